from rest_framework.routers import SimpleRouter

from control_plane.keys.api.views import VirtualKeyViewSet

router = SimpleRouter()
router.register("keys", VirtualKeyViewSet)
urlpatterns = router.urls
