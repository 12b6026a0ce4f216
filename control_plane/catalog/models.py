"""The model catalog and routing: providers, their credentials, models with prices, and the
routes (public model names) that tenants' keys ask for."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from control_plane.core.models import ScopedQuerySet, UUIDModel
from control_plane.tenancy.models import Tenant

# The longest a route may keep cached answers (30 days).
CACHE_TTL_MAX_S = 30 * 24 * 3600


class ProviderKind(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    MISTRAL = "mistral", "Mistral"
    AZURE_OPENAI = "azure_openai", "Azure OpenAI"
    GEMINI = "gemini", "Gemini"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible (vLLM, Ollama, ...)"
    MOCK = "mock", "Built-in mock"


class ProviderQuerySet(ScopedQuerySet):
    tenant_path = None  # platform-wide


class Provider(UUIDModel):
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=ProviderKind.choices)
    base_url = models.URLField(blank=True, help_text="Empty: the provider's public endpoint.")
    options = models.JSONField(
        default=dict, blank=True, help_text="Provider-specific settings (string values)."
    )
    enabled = models.BooleanField(default=True)

    objects = ProviderQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ProviderCredential(UUIDModel):
    """An API key of one tenant for one provider. The secret is stored encrypted with
    ASC_CREDENTIAL_KEY (``encrypted_secret``) and sealed for the data planes with ASC_SEAL_KEY
    (``sealed_secret``); only ``secret_hint`` is ever shown back."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="credentials")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="credentials")
    name = models.CharField(max_length=100)
    encrypted_secret = models.BinaryField(editable=False)
    # The same secret sealed with ASC_SEAL_KEY, as it travels in snapshots.
    sealed_secret = models.BinaryField(editable=False)
    secret_hint = models.CharField(max_length=32, editable=False, blank=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="credential_name_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.name}"


def _price(help_text: str) -> models.DecimalField[Decimal, Decimal]:
    return models.DecimalField(
        max_digits=12,
        decimal_places=6,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
        help_text=help_text,
    )


class Model(UUIDModel):
    """A model of a provider, in a region, with its prices in USD per million tokens."""

    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models")
    provider_model = models.CharField(max_length=200, help_text="The provider's model name.")
    region = models.CharField(max_length=64, default="global")
    input_price = _price("USD per million input tokens.")
    output_price = _price("USD per million output tokens.")
    cached_input_price = _price("USD per million cached input tokens (0: billed as input).")

    objects = ProviderQuerySet.as_manager()

    class Meta:
        ordering = ["provider__name", "provider_model", "region"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_model", "region"], name="model_per_region"
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.provider_model}@{self.region}"


class Route(UUIDModel):
    """The public model name a client asks for, served by ordered, weighted targets."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="routes")
    name = models.CharField(max_length=200)
    # Resilience (0: the data plane's defaults).
    connect_timeout_ms = models.PositiveIntegerField(default=0, blank=True)
    first_token_timeout_ms = models.PositiveIntegerField(
        default=0, blank=True, help_text="Until the first token (streams) or the answer."
    )
    total_timeout_ms = models.PositiveIntegerField(default=0, blank=True)
    max_retries = models.PositiveIntegerField(
        default=0, blank=True, help_text="Retries of one target before falling back."
    )
    latency_aware = models.BooleanField(
        default=False, help_text="Within a priority, prefer the target answering fastest."
    )
    drop_untranslatable = models.BooleanField(
        default=False,
        help_text=(
            "Serve a request whose feature the target's format cannot carry (thinking to an"
            " OpenAI upstream, say) without it, recording the drop in the audit record,"
            " instead of refusing it with a 400."
        ),
    )
    cache_ttl_s = models.PositiveIntegerField(
        default=0,
        blank=True,
        validators=[MaxValueValidator(CACHE_TTL_MAX_S)],
        help_text=(
            "Exact-match response cache: keep successful answers this many seconds and serve"
            " a repeat of the same request from the cache (0: off). See docs/cache.md."
        ),
    )

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="route_name_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.name}"


class RouteTarget(models.Model):
    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="targets")
    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="targets")
    # RESTRICT, not PROTECT: a credential in use cannot be deleted on its own, but deleting its
    # tenant (which deletes the tenant's routes and their targets too) may proceed.
    credential = models.ForeignKey(
        ProviderCredential, on_delete=models.RESTRICT, related_name="targets"
    )
    priority = models.PositiveIntegerField(default=0, help_text="Lower is tried first.")
    weight = models.PositiveIntegerField(default=1, help_text="Share within one priority.")

    class Meta:
        ordering = ["route", "priority", "id"]

    def __str__(self) -> str:
        return f"{self.route} -> {self.model}"


class RouteGroup(UUIDModel):
    """A model access group: a named set of a tenant's routes, granted as one to keys and to
    projects (every key of a granted project may use them). The control plane resolves the
    grants into each key's routes in the snapshot."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="route_groups")
    name = models.CharField(max_length=100)
    routes = models.ManyToManyField(Route, blank=True, related_name="groups")
    projects = models.ManyToManyField(
        "asc_tenancy.Project", blank=True, related_name="route_groups"
    )

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="route_group_name_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.name}"
