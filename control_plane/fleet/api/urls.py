from rest_framework.routers import SimpleRouter

from control_plane.fleet.api import views

router = SimpleRouter()
router.register("snapshots", views.PolicySnapshotViewSet)
router.register("nodes", views.DataPlaneNodeViewSet)
urlpatterns = router.urls
