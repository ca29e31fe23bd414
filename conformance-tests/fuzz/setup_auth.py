"""Credentials for the fuzzing run, made through the API itself against a server in development mode:
a CSC access token (HTTP Basic login of a signer made by `rssp provision-user`) and two lifecycle
sessions (a person registered and activated through /api/v1, the activation link and SMS code read
from the development outbox with the operator key). Prints them as one JSON object."""

import argparse
import json
import re
import secrets
import sys
import time

import requests


def outbox(url, operator_key, recipient, pattern):
    """The first match of `pattern` in the newest message to `recipient` (messages may lag a little)."""
    for _ in range(20):
        answer = requests.get(f"{url}/api/admin/v1/outbox", params={"recipient": recipient},
                              headers={"Authorization": f"Bearer {operator_key}"}, timeout=30)
        answer.raise_for_status()
        for message in reversed(answer.json()["messages"]):
            if message.get("recipient") == recipient:
                found = re.search(pattern, message.get("body", ""))
                if found:
                    return found.group(1)
        time.sleep(0.3)
    sys.exit(f"nothing matching {pattern!r} in the outbox for {recipient}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--operator-key", required=True)
    args = parser.parse_args()
    url = args.url

    login = requests.post(f"{url}/csc/v1/auth/login", json={}, auth=(args.username, args.password), timeout=30)
    login.raise_for_status()
    csc_token = login.json()["access_token"]

    suffix = secrets.token_hex(4)
    email, phone = f"fuzz-{suffix}@example.org", f"+38640{int(suffix, 16) % 1000000:06d}"
    password = f"Fuzzing passphrase {suffix} 42"
    documents = requests.get(f"{url}/api/v1/documents", timeout=30).json()
    registration = {"given_name": "Fuzz", "surname": "Tester", "email": email, "phone": phone,
                    "privacy_consent": {"accepted": True, "version": documents["privacy"]}}
    requests.post(f"{url}/api/v1/registrations", json=registration, timeout=30).raise_for_status()
    token = outbox(url, args.operator_key, email, r"token=([A-Za-z0-9_-]+)")
    requests.post(f"{url}/api/v1/activation/send-code", json={"token": token}, timeout=30).raise_for_status()
    code = outbox(url, args.operator_key, phone, r"(?<!\d)(\d{6})(?!\d)")
    requests.post(f"{url}/api/v1/activation/complete", json={"token": token, "code": code, "password": password},
                  timeout=30).raise_for_status()
    sessions = []
    for _ in range(2):
        session = requests.post(f"{url}/api/v1/login", json={"email": email, "password": password}, timeout=30)
        session.raise_for_status()
        sessions.append(session.json()["access_token"])
    # The second session is for /api/v1/logout alone, which ends the session it is called with.
    print(json.dumps({"csc_token": csc_token, "portal_token": sessions[0], "logout_token": sessions[1]}))


if __name__ == "__main__":
    main()
