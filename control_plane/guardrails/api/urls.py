from rest_framework.routers import SimpleRouter

from control_plane.guardrails.api import views

router = SimpleRouter()
router.register("guardrails", views.GuardrailPolicyViewSet)
urlpatterns = router.urls
