from rest_framework.routers import SimpleRouter

from control_plane.rollouts.api import views

router = SimpleRouter()
router.register("rollouts", views.RolloutViewSet)
urlpatterns = router.urls
