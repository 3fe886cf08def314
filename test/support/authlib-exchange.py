"""Token exchange (RFC 8693) driven by Python's Authlib, as a service written in Python would do
it: its requests-based OAuth2Session, authenticating with client_secret_basic, asking the token
endpoint for the token-exchange grant. test/token-exchange.test.ts runs it against a Postern it
started. Reads what it needs from the environment (never from arguments, where other processes
could see the secrets) and prints the token response as JSON, or an error as JSON and exits 1."""

import json
import os
import sys

from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client import OAuthError

TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange'
ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token'


def main():
    env = os.environ
    session = OAuth2Session(
        env['CLIENT_ID'], env['CLIENT_SECRET'], token_endpoint_auth_method='client_secret_basic',
    )
    try:
        token = session.fetch_token(
            env['TOKEN_ENDPOINT'],
            grant_type=TOKEN_EXCHANGE,
            subject_token=env['SUBJECT_TOKEN'],
            subject_token_type=ACCESS_TOKEN,
            resource=env['RESOURCE'],
            timeout=10,
        )
    except OAuthError as error:
        print(json.dumps({'error': error.error, 'error_description': error.description}))
        return 1
    print(json.dumps(dict(token)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
