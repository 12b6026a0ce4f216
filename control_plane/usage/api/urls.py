from rest_framework.routers import SimpleRouter

from control_plane.usage.api.views import UsageRecordViewSet

router = SimpleRouter()
router.register("usage", UsageRecordViewSet)
urlpatterns = router.urls
