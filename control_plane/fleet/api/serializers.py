from rest_framework import serializers

from control_plane.fleet.models import DataPlaneNode, PolicySnapshot


class PolicySnapshotSerializer(serializers.ModelSerializer[PolicySnapshot]):
    class Meta:
        model = PolicySnapshot
        fields = ["version", "hash", "created_at", "created_by", "reason", "size_bytes"]


class DataPlaneNodeSerializer(serializers.ModelSerializer[DataPlaneNode]):
    class Meta:
        model = DataPlaneNode
        fields = [
            "node_id",
            "region",
            "software_version",
            "boot_id",
            "applied_version",
            "applied_hash",
            "connected",
            "last_ack_at",
            "last_nack_at",
            "last_error",
            "first_seen",
            "last_seen",
            "spool_depth",
        ]
