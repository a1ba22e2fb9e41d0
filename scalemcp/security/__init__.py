"""Origin validation, authentication (API keys, OAuth 2.1 JWT bearer tokens), rate limits.

    origin.py       Origin and Host checks (DNS-rebinding defence)
    principal.py    Principal, and the Authenticator protocol to plug in your own
    credentials.py  reading Authorization: Bearer / X-API-Key
    api_keys.py     API keys stored as SHA-256 digests; `scalemcp hash-key`
    jwt_auth.py     JWT access tokens (signature, exp/nbf, iss, audience, scopes)
    jwks.py         the authorization server's keys: fetched, cached, rotated
    introspection.py  opaque tokens: RFC 7662 token introspection, cached
    bearer.py       auth = "jwt": JWTs checked locally, opaque tokens introspected
    resource.py     canonical resource URI, RFC 9728 metadata, WWW-Authenticate challenges
    gate.py         the gate the transport calls: built from Config
    ratelimit.py    token-bucket rate limits per principal and per tool (fleet-wide with Redis)
"""
