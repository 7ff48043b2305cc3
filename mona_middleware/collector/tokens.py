"""JWT-shaped access and refresh tokens, as Mona's identity endpoint hands them out.

The ``mona_sdk`` decodes the access token (without checking the signature) to learn
the user id from its ``tenantId`` claim, so tokens must be real JWTs. They are signed
with HMAC-SHA256 under a key derived from the collector's secret: verification needs
no server-side state, and tokens stay valid across a restart with the same secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

ACCESS = "access"
REFRESH = "refresh"
REFRESH_TTL = 30 * 24 * 3600.0


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues and checks tokens for one api key / secret / user id.

    >>> issuer = TokenIssuer("key", "secret", "tenant")
    >>> issuer.verify(issuer.issue(ACCESS, 60), ACCESS)
    True
    """

    def __init__(self, api_key: str, secret: str, user_id: str) -> None:
        self.api_key = api_key
        self.secret = secret
        self.user_id = user_id
        self._key = hashlib.sha256(b"mona-collector-token:" + secret.encode()).digest()

    def credentials_match(self, client_id: object, secret: object) -> bool:
        """Constant-time check of a token request's ``clientId`` and ``secret``."""
        if not isinstance(client_id, str) or not isinstance(secret, str):
            return False
        key_ok = hmac.compare_digest(client_id.encode(), self.api_key.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self.secret.encode())
        return key_ok and secret_ok

    def issue(self, use: str, ttl: float) -> str:
        """A signed token of kind ``use`` (``access``/``refresh``) living ``ttl`` seconds."""
        now = int(time.time())
        claims = {
            "tenantId": self.user_id,
            "sub": self.api_key,
            "token_use": use,
            "iat": now,
            "exp": now + int(ttl),
            "jti": secrets.token_hex(8),
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{header}.{payload}.{self._sign(header, payload)}"

    def token_response(self, ttl: float) -> dict[str, Any]:
        """The body Mona's token and refresh endpoints answer with."""
        return {
            "accessToken": self.issue(ACCESS, ttl),
            "refreshToken": self.issue(REFRESH, REFRESH_TTL),
            "expiresIn": int(ttl),
        }

    def verify(self, token: object, use: str) -> bool:
        """True when ``token`` is ours, unexpired, of kind ``use`` and for our user id."""
        claims = self._claims(token)
        return (
            claims is not None
            and claims.get("token_use") == use
            and claims.get("tenantId") == self.user_id
            and isinstance(claims.get("exp"), int)
            and claims["exp"] > time.time()
        )

    def _claims(self, token: object) -> dict[str, Any] | None:
        if not isinstance(token, str) or token.count(".") != 2:
            return None
        header, payload, signature = token.split(".")
        if not hmac.compare_digest(signature.encode(), self._sign(header, payload).encode()):
            return None
        try:
            claims = json.loads(_unb64(payload))
        except ValueError:
            return None
        return claims if isinstance(claims, dict) else None

    def _sign(self, header: str, payload: str) -> str:
        mac = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256)
        return _b64(mac.digest())
