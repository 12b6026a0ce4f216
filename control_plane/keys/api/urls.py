from rest_framework.routers import SimpleRouter

from control_plane.keys.api.idp import IdentityProviderViewSet
from control_plane.keys.api.views import VirtualKeyViewSet

router = SimpleRouter()
router.register("keys", VirtualKeyViewSet)
router.register("identity-providers", IdentityProviderViewSet)
urlpatterns = router.urls
