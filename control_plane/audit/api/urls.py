from rest_framework.routers import SimpleRouter

from control_plane.audit.api.views import AuditRecordViewSet

router = SimpleRouter()
router.register("audit", AuditRecordViewSet)
urlpatterns = router.urls
