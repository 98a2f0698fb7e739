"""The ``cloudflare`` connection form of Airflow before 3.2 (3.2+ reads ``conn-fields`` from the provider info).

:class:`~airflow_provider_cftunnel.hooks.cloudflare.CloudflareHook` hands these to Airflow; the form's widgets
are imported only when it asks.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_cftunnel.get_provider_info import ACCOUNT_ID_PATTERN, CONNECTION_UI_FIELD_BEHAVIOUR

__all__ = ["connection_form_widgets", "ui_field_behaviour"]


def connection_form_widgets() -> dict[str, Any]:
    """Return the extra fields of the connection form, for Airflow 2.11 to 3.1 (2.11's form runs the validators)."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import StringField
    from wtforms.validators import Optional, Regexp

    return {
        "account_id": StringField(
            lazy_gettext("Account ID"),
            widget=BS3TextFieldWidget(),
            validators=[
                Optional(),
                Regexp(
                    ACCOUNT_ID_PATTERN,
                    message="An account id is 32 hex characters (0-9, a-f), from the dashboard URL "
                    "dash.cloudflare.com/<account id>/...; leave it empty to pass account_id in each task.",
                ),
            ],
            description="Default Cloudflare account id (32 hex characters, from the dashboard URL).",
        ),
    }


def ui_field_behaviour() -> dict[str, Any]:
    """Return which standard fields the connection form hides and how it labels them, for Airflow < 3.2."""
    return {
        "hidden_fields": list(CONNECTION_UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(CONNECTION_UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(CONNECTION_UI_FIELD_BEHAVIOUR["placeholders"]),
    }
