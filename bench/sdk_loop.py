"""The baseline sender: a loop over the official SDK, as the Vonage tutorial writes it."""

from __future__ import annotations

import os
import sys

from vonage import Auth, HttpClientOptions, Vonage
from vonage_messages import Sms


def main() -> None:
    count, api_host = int(sys.argv[1]), sys.argv[2]
    client = Vonage(
        Auth(
            application_id=os.environ["VONAGE_APPLICATION_ID"],
            private_key=os.environ["VONAGE_PRIVATE_KEY_PATH"],
        ),
        HttpClientOptions(api_host=api_host),
    )
    for index in range(count):
        client.messages.send(Sms(to="14155550101", from_="14155550199", text=f"Hello {index}"))


if __name__ == "__main__":
    main()
