from django.urls import path
from rest_framework.routers import SimpleRouter

from control_plane.usage.api.views import SpendView, UsageRecordViewSet

router = SimpleRouter()
router.register("usage", UsageRecordViewSet)
urlpatterns = [path("spend/", SpendView.as_view(), name="spend"), *router.urls]
