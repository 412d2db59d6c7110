"""Bearer-token auth: 401 when the token is missing or unknown, 403 when its role may not do this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .settings import ROLES, Token

bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer <token>` (roles read, approve, admin)")


def require(role: str) -> Callable[..., Awaitable[Token]]:
    if role not in ROLES:
        raise ValueError(role)

    # async: a few microseconds of hashing, not worth a thread hop per request
    async def dependency(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> Token:  # noqa: B008
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        token: Token | None = request.app.state.settings.tokens.match(credentials.credentials)
        if token is None:
            raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if not token.may(role):
            raise HTTPException(403, f"token {token.name!r} has role {token.role!r}; this needs {role!r} or higher")
        request.state.principal = token
        return token

    return dependency
