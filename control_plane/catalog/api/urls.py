from rest_framework.routers import SimpleRouter

from control_plane.catalog.api import views

router = SimpleRouter()
router.register("providers", views.ProviderViewSet)
router.register("credentials", views.ProviderCredentialViewSet)
router.register("models", views.ModelViewSet)
router.register("routes", views.RouteViewSet)
router.register("route-groups", views.RouteGroupViewSet)
urlpatterns = router.urls
