"""Thin kopf handlers: read state, call the pure core, write the result. Registrations live in
assay.controllers.registry; one module per reaction (handle_*)."""

import logging
from typing import Any

Logger = logging.Logger | logging.LoggerAdapter[Any]
