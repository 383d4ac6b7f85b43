"""Webhooks NOA receives: GitHub ``push`` / ``pull_request`` -> CI/CD pipeline runs."""

from noa_core.webhooks.deliveries import Claim, DeliveryRecord, DeliveryStore
from noa_core.webhooks.github import (
                                      BadPayload,
                                      BadSignature,
                                      GitHubTrigger,
                                      IgnoredEvent,
                                      WebhookError,
                                      parse_event,
                                      sign,
                                      verify_signature,
)

__all__ = ["BadPayload", "BadSignature", "Claim", "DeliveryRecord", "DeliveryStore", "GitHubTrigger",
           "IgnoredEvent", "WebhookError", "parse_event", "sign", "verify_signature"]
