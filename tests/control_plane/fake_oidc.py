"""A small OpenID Connect provider for the SSO tests: a real HTTP server on port 0 (in a
thread) serving discovery, an authorization endpoint that signs in ``user`` at once and
redirects back with a code, a token endpoint that checks the client, the code, the redirect
URI and the PKCE verifier and issues an RS256 ID token, and the JWKS.

Knobs for the failure tests: ``claims`` overrides (or removes, with None) ID token claims;
``signing_key`` signs with another key than the published one; ``algorithm`` another alg.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "asc-control-plane"
CLIENT_SECRET = "client-secret-for-tests"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Grant:
    user: dict[str, Any]
    nonce: str
    challenge: str
    redirect_uri: str


@dataclass
class FakeOidc:
    user: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "u-1",
            "preferred_username": "alice",
            "email": "alice@example.com",
            "groups": [],
        }
    )
    claims: dict[str, Any] = field(default_factory=dict)
    key: rsa.RSAPrivateKey = field(default_factory=new_key)
    signing_key: Any = None
    algorithm: str = "RS256"
    kid: str = "key-1"
    codes: dict[str, Grant] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def id_token(self, user: dict[str, Any], nonce: str | None, audience: str = CLIENT_ID) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "exp": now + 300,
            **user,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        for name, value in self.claims.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        key = self.signing_key or self.key
        return jwt.encode(claims, key, algorithm=self.algorithm, headers={"kid": self.kid})

    def __enter__(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/.well-known/openid-configuration":
                    self._json(
                        200,
                        {
                            "issuer": fake.issuer,
                            "authorization_endpoint": fake.issuer + "/authorize",
                            "token_endpoint": fake.issuer + "/token",
                            "jwks_uri": fake.issuer + "/jwks",
                            "response_types_supported": ["code"],
                            "id_token_signing_alg_values_supported": ["RS256"],
                        },
                    )
                elif url.path == "/jwks":
                    self._json(200, fake.jwks())
                elif url.path == "/authorize":
                    self._authorize(query)
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                if self.path != "/token":
                    self._json(404, {"error": "not_found"})
                    return
                fake.token_requests.append(form)
                expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    self._json(401, {"error": "invalid_client"})
                    return
                grant = fake.codes.pop(form.get("code", ""), None)  # a code works once
                verifier = form.get("code_verifier", "")
                challenge = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                    .rstrip(b"=")
                    .decode()
                )
                if (
                    grant is None
                    or form.get("grant_type") != "authorization_code"
                    or form.get("redirect_uri") != grant.redirect_uri
                    or challenge != grant.challenge
                ):
                    self._json(400, {"error": "invalid_grant"})
                    return
                token = fake.id_token(grant.user, grant.nonce)
                self._json(
                    200, {"access_token": "opaque", "token_type": "Bearer", "id_token": token}
                )

            def _authorize(self, query: dict[str, str]) -> None:
                if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
                    self._json(400, {"error": "invalid_request"})
                    return
                if query.get("code_challenge_method") != "S256":
                    self._json(400, {"error": "pkce_required"})
                    return
                code = secrets.token_urlsafe(16)
                fake.codes[code] = Grant(
                    dict(fake.user), query["nonce"], query["code_challenge"], query["redirect_uri"]
                )
                back = urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
                self.send_response(302)
                self.send_header("Location", f"{query['redirect_uri']}?{back}")
                self.end_headers()

            def _json(self, status: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
