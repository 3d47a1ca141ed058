"""The request body smsctl builds is, field for field, the one the official SDK's `Sms` model builds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vonage_messages import Sms, SmsOptions

from smsctl.config import load_settings
from smsctl.encoding import EncodingChoice
from smsctl.errors import UsageError
from smsctl.messages.sending import SendRequest, prepare

recipients = st.sampled_from(["+14155550101", "+447700900123", "+4915112345678", "+61412345678"])
senders = st.one_of(st.sampled_from(["Acme", "ACME2FA", "12345", "+14155550100"]))
texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=400)
refs = st.one_of(st.none(), st.text(min_size=1, max_size=100))
urls = st.one_of(
    st.none(), st.sampled_from(["https://abc.ngrok.app/webhooks/status", "http://127.0.0.1:3000/s"])
)


@settings(max_examples=200, deadline=None)
@given(recipients, senders, texts, refs, urls, st.one_of(st.none(), st.integers(20, 604800)),
       st.sampled_from(list(EncodingChoice)))  # fmt: skip
def test_body_matches_the_sdk_model(to: str, sender: str, text: str, ref: str | None, url: str | None,
                                    ttl: int | None, encoding: EncodingChoice) -> None:  # fmt: skip
    try:
        prepared = prepare(SendRequest(to, text, sender, ref, url, ttl, encoding), load_settings())
    except UsageError:
        return  # e.g. --encoding text with characters GSM-7 cannot carry: refused before any body
    body = prepared.body
    sdk = Sms(to=body["to"], from_=body["from"], text=text, client_ref=body["client_ref"], webhook_url=url,
              webhook_version="v1" if url else None, ttl=ttl,
              sms=SmsOptions(encoding_type=encoding.value) if encoding != EncodingChoice.AUTO else None)  # fmt: skip
    assert body == sdk.model_dump(by_alias=True, exclude_none=True, mode="json")


@pytest.mark.parametrize("url", ["/webhooks/status", "ftp://x.example/s", "https://"])
def test_a_relative_or_odd_webhook_url_is_refused_before_sending(url: str) -> None:
    with pytest.raises(UsageError, match="not an absolute http"):
        prepare(SendRequest("+14155550101", "hi", "Acme", None, url), load_settings())
