from django.apps import AppConfig


class GrpcApiConfig(AppConfig):
    name = "control_plane.grpc_api"
    label = "asc_grpc_api"
