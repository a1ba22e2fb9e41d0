"""Redis URLs (the forms the Helm chart emits) and the key layout's cluster slots."""

from __future__ import annotations

import binascii

import pytest

from scalemcp.state.redis_connect import ClientOptions, RedisTarget, parse_url
from scalemcp.state.redis_layout import Keys, hash_slot


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://127.0.0.1:6379/0", RedisTarget("standalone", "redis://127.0.0.1:6379/0")),
    ("rediss://u:p@h:6380/2", RedisTarget("standalone", "rediss://u:p@h:6380/2", tls=True)),
    ("unix:///run/redis.sock?db=1", RedisTarget("standalone", "unix:///run/redis.sock?db=1")),
    ("redis+sentinel://s1:26379,s2:26380/mymaster/3", RedisTarget(
        "sentinel", "redis+sentinel://s1:26379,s2:26380/mymaster/3",
        hosts=(("s1", 26379), ("s2", 26380)), db=3, master="mymaster")),
    ("rediss+sentinel://:p%40ss@s1,[::1]:5000/m", RedisTarget(
        "sentinel", "rediss+sentinel://:p%40ss@s1,[::1]:5000/m", tls=True,
        hosts=(("s1", 26379), ("::1", 5000)), password="p@ss", master="m")),
    ("redis+sentinel://app:$(REDIS_PASSWORD)@s-0.s.redis.svc:26379/mymaster/0", RedisTarget(
        "sentinel", "redis+sentinel://app:$(REDIS_PASSWORD)@s-0.s.redis.svc:26379/mymaster/0",
        hosts=(("s-0.s.redis.svc", 26379),), username="app", password="$(REDIS_PASSWORD)",
        master="mymaster")),
    ("redis+cluster://n1:7000,n2:7001", RedisTarget(
        "cluster", "redis+cluster://n1:7000,n2:7001", hosts=(("n1", 7000), ("n2", 7001)))),
    ("rediss+cluster://user:pw@n1", RedisTarget(
        "cluster", "rediss+cluster://user:pw@n1", tls=True, hosts=(("n1", 6379),),
        username="user", password="pw")),
])
def test_parse_url(url: str, expected: RedisTarget) -> None:
    assert parse_url(url) == expected


def test_the_charts_urls() -> None:
    """As tests/deploy/test_helm.py renders them (the password substituted, %-encoded)."""
    sentinel = parse_url(
        "redis+sentinel://:p%3Aw@redis-sentinel-0.redis-sentinel.redis.svc:26379,"
        "redis-sentinel-1.redis-sentinel.redis.svc:26379,"
        "redis-sentinel-2.redis-sentinel.redis.svc:26379/mymaster/0")
    assert (sentinel.mode, sentinel.master, sentinel.db, sentinel.password) == (
        "sentinel", "mymaster", 0, "p:w")
    assert [port for _, port in sentinel.hosts] == [26379] * 3
    cluster = parse_url(
        "rediss+cluster://scalemcp:p%40w@redis-cluster-0.redis-cluster-headless.redis.svc:6379,"
        "redis-cluster-1.redis-cluster-headless.redis.svc:6379,"
        "redis-cluster-2.redis-cluster-headless.redis.svc:6379")
    assert (cluster.mode, cluster.tls, cluster.username, cluster.password) == (
        "cluster", True, "scalemcp", "p@w")
    assert cluster.hosts[2] == ("redis-cluster-2.redis-cluster-headless.redis.svc", 6379)


@pytest.mark.parametrize(("url", "message"), [
    ("http://h:6379", "unsupported Redis URL"),
    ("127.0.0.1:6379", "unsupported Redis URL"),
    ("redis+sentinel://s1:26379", "must end in /<master>"),
    ("redis+sentinel://s1:26379/m/0/x", "must end in /<master>"),
    ("redis+sentinel://s1:26379/m/zero", "bad database number"),
    ("redis+sentinel:///m/0", "names no sentinel hosts"),
    ("redis+cluster://n1:6379/1", "only database 0"),
    ("redis+cluster://n1:port", "bad port"),
    ("redis+cluster://:pw@n1:99999", "bad port"),
])
def test_bad_urls_say_why(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_url(url)
    assert "pw" not in str(info.value)  # passwords stay out of errors


def test_target_str_hides_the_password() -> None:
    target = parse_url("redis+sentinel://app:hunter2@s1:26379/m/0")
    assert "hunter2" not in str(target)
    assert "app:***@s1:26379" in str(target)


def test_tls_context() -> None:
    options = ClientOptions(tls_check_hostname=False)
    context = options.ssl_context()
    assert context.check_hostname is False
    assert ClientOptions().ssl_context().check_hostname is True


def test_hash_slot_matches_redis() -> None:
    # Known slots (CLUSTER KEYSLOT), and the hash tag rules.
    assert hash_slot("foo") == 12182
    assert hash_slot("{user1000}.following") == hash_slot("{user1000}.followers") == 3443
    assert hash_slot("foo{}{bar}") == binascii.crc_hqx(b"foo{}{bar}", 0) % 16384
    assert hash_slot("foo{{bar}}zap") == hash_slot("{bar")
    assert hash_slot("foo{bar}{zap}") == hash_slot("bar")


def test_every_key_of_a_session_shares_its_slot() -> None:
    keys = Keys("smcp:")
    sid = "0f3c9a"
    slot = hash_slot(sid)
    for key in [keys.session(sid), keys.stream(sid, "get"), keys.stream(sid, "p1"),
                keys.stream_set(sid), keys.mailbox(sid, "r:1")]:
        assert hash_slot(key) == slot, key
    # A worker's inbox and the broadcast stream: one slot, so one XREAD reads both.
    assert hash_slot(keys.inbox("w1")) == hash_slot(keys.inbox("w2")) == hash_slot(
        keys.broadcast)
