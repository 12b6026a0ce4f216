from rest_framework.routers import SimpleRouter

from control_plane.limits.api import views

router = SimpleRouter()
router.register("limits", views.LimitViewSet)
router.register("projects", views.ProjectViewSet)
urlpatterns = router.urls
