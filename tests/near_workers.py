"""Processes of the near-cache coherence test (tests/test_near_cache_processes.py).

The writer changes a small key space through every write path of the package and through
plain SQL. After each operation it snapshots the whole key space with plain SQL and sends a
fence notification ``!w<i>`` (``pg_notify`` on the cache channel, after the operation
committed). The reader, with the near cache on, reads at random and records, for each
read, the last fence its listener had applied when the read started. Notifications reach a
listener in commit order, so when fence i has been applied, every invalidation of
operations 0..i has been too: a read that starts then must return the state after
operation i or a later one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from array import array
from typing import Any

import psycopg

from digitwin_db import Database, RepositoryFactory, ValidationError
from digitwin_db.aio import AsyncDatabase, AsyncRepositoryFactory
from digitwin_db.cache_codec import KV_PERSON, hash_key

NAMESPACE = "h"
KV_KEYS = ["a", "b", "c", "d", "e", "f"]
TEXTS = ["e0", "e1"]
QUERIES = ["q0", "q1"]
PROMPTS = ["p0", "p1"]
FILLERS = 500  # more keys than one notification can list: the namespace is dropped
LONG_TTL = 3600


def snapshot(conn: psycopg.Connection) -> dict[str, Any]:
    """The state of every key the reader reads, in the reader's representation."""
    state: dict[str, Any] = dict.fromkeys([f"kv:{k}" for k in KV_KEYS])
    for key, value in conn.execute(
        "SELECT key, value_json FROM kv_cache WHERE namespace = %s AND key = ANY(%s) "
        "AND (expires_at IS NULL OR expires_at > now())",
        (NAMESPACE, KV_KEYS),
    ):
        state[f"kv:{key}"] = value
    state.update(dict.fromkeys([f"emb:{t}" for t in TEXTS]))
    for text, data in conn.execute(
        "SELECT text, embedding FROM embedding_cache WHERE model = 'm' AND expires_at > now()"
    ):
        state[f"emb:{text}"] = array("f", data).tolist()
    state.update(dict.fromkeys([f"search:{q}" for q in QUERIES]))
    for query, hits in conn.execute(
        "SELECT query, hits FROM vector_search_cache WHERE index_name = 'i' AND expires_at > now()"
    ):
        state[f"search:{query}"] = [[h["id"], h["score"]] for h in hits]
    state.update(dict.fromkeys([f"llm:{p}" for p in PROMPTS]))
    for prompt, response in conn.execute(
        "SELECT prompt, response FROM llm_response_cache WHERE model = 'm' AND expires_at > now()"
    ):
        state[f"llm:{prompt}"] = response
    return state


def _writer_ops(factory: RepositoryFactory, conn: psycopg.Connection) -> list[Any]:
    cache = factory.cache
    kv = cache.namespace(NAMESPACE)

    def key() -> str:
        return random.choice(KV_KEYS)

    def sql_fillers(i: int) -> None:
        conn.execute(
            "INSERT INTO kv_cache (key_hash, namespace, key, value_json, byte_size) "
            "SELECT -g, %s, 'filler' || g, to_jsonb(%s::int), 1 "
            "FROM generate_series(1, %s) g ON CONFLICT DO NOTHING",
            (NAMESPACE, i, FILLERS),
        )

    def sql_insert(i: int) -> None:
        k = key()
        conn.execute(
            "INSERT INTO kv_cache (key_hash, namespace, key, value_json, byte_size) "
            "VALUES (%s, %s, %s, to_jsonb(%s::int), 8) ON CONFLICT (key_hash) "
            "DO UPDATE SET value_json = EXCLUDED.value_json, expires_at = NULL",
            (hash_key(KV_PERSON, f"{NAMESPACE}\x00{k}".encode()), NAMESPACE, k, i),
        )

    return [
        lambda i: kv.set(key(), i, ttl=LONG_TTL, tags=["t"] if i % 2 else ()),
        lambda i: kv.set(key(), {"i": i}),
        lambda i: kv.add(key(), i),
        lambda i: kv.set_many({key(): i, key(): {"m": i}}),
        lambda i: kv.delete(key()),
        lambda i: kv.delete_many([key(), key()]),
        lambda i: kv.delete_prefix(random.choice(["a", "b", "c"])),
        lambda i: kv.invalidate_tags("t"),
        lambda i: kv.clear() if random.random() < 0.3 else None,
        lambda i: kv.incr(key(), i),
        lambda i: kv.decr(key()),
        lambda i: kv.expire(key(), LONG_TTL),
        lambda i: kv.persist(key()),
        lambda i: kv.get_or_set(key(), lambda: i),
        lambda i: cache.set_embedding(random.choice(TEXTS), [float(i)], model="m"),
        lambda i: cache.set_embeddings({t: [float(i)] for t in TEXTS}, model="m"),
        lambda i: cache.set_search_results(random.choice(QUERIES), [(f"d{i}", 0.5)], index="i"),
        lambda i: cache.set_llm_response(random.choice(PROMPTS), f"r{i}", model="m"),
        lambda i: cache.cleanup_expired(),
        lambda i: cache.enforce_caps(),
        lambda i: kv.set("short", i, ttl=0.001),  # expires at once; cleanup removes it
        sql_insert,
        sql_fillers,
        lambda i: conn.execute(
            "UPDATE kv_cache SET value_json = to_jsonb(%s::int) WHERE namespace = %s",
            (i, NAMESPACE),
        ),
        lambda i: conn.execute(
            "DELETE FROM kv_cache WHERE namespace = %s AND key = %s", (NAMESPACE, key())
        ),
        lambda i: conn.execute("DELETE FROM kv_cache WHERE key LIKE 'filler%%'"),
        lambda i: conn.execute(
            "UPDATE embedding_cache SET embedding = %s WHERE text = %s",
            (array("f", [float(-i)]).tobytes(), random.choice(TEXTS)),
        ),
        lambda i: conn.execute(
            "UPDATE vector_search_cache SET hits = jsonb_build_array("
            "jsonb_build_object('id', 'sql' || %s::text, 'score', 1.0))",
            (i,),
        ),
        lambda i: conn.execute(
            "UPDATE llm_response_cache SET response = 'sql' || %s::text WHERE prompt = %s",
            (i, random.choice(PROMPTS)),
        ),
        lambda i: conn.execute(
            "DELETE FROM llm_response_cache WHERE prompt = %s", (random.choice(PROMPTS),)
        ),
    ]


def writer(url: str, ops: int, seed: int, ready: Any, done: Any, out: Any) -> None:
    """Run ``ops`` random operations; put (snapshots, op names) on ``out``."""
    random.seed(seed)
    db = Database(url=url, pool_min_size=1, pool_max_size=4, kv_cache_max_entries=FILLERS + 3)
    db.open()
    factory = RepositoryFactory(db)
    conn = psycopg.connect(url, autocommit=True)
    operations = _writer_ops(factory, conn)
    snapshots = [snapshot(conn)]
    names: list[int] = []
    ready.wait(60)
    try:
        for i in range(ops):
            choice = random.randrange(len(operations))
            with contextlib.suppress(ValidationError):  # incr of a non-integer: no change
                operations[choice](i)
            names.append(choice)
            snapshots.append(snapshot(conn))
            conn.execute("SELECT pg_notify('digitwin_cache', %s)", (f"!w{i}",))
            time.sleep(0.001 + random.random() * 0.002)  # readers get a turn
    finally:
        done.set()
        conn.close()
        factory.close()
        db.close()
    out.put((snapshots, names))


class _Fences:
    def __init__(self) -> None:
        self.last = -1
        self.seen = threading.Event()
        self.final = -1

    def __call__(self, payload: str) -> None:
        if payload.startswith("!w"):
            self.last = int(payload[2:])
            if self.last == self.final:
                self.seen.set()


def _represent(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name.startswith("search:"):
        return [[h.id, h.score] for h in value]
    if name.startswith("llm:"):
        return value.response
    return value


def _pick(rng: random.Random) -> tuple[str, list[str]]:
    kind = rng.choice(["kv", "kv", "kv_many", "emb", "emb_many", "search", "llm"])
    if kind == "kv":
        return kind, [rng.choice(KV_KEYS)]
    if kind == "kv_many":
        return kind, rng.sample(KV_KEYS, 3)
    if kind in ("emb", "emb_many"):
        return kind, [rng.choice(TEXTS)] if kind == "emb" else list(TEXTS)
    return kind, [rng.choice(QUERIES if kind == "search" else PROMPTS)]


def reader(url: str, ops: int, ready: Any, done: Any, out: Any) -> None:
    """Read at random until the writer is done; put (reads, near stats) on ``out``."""
    db = Database(url=url, pool_min_size=1, pool_max_size=4, near_cache=True)
    db.open()
    factory = RepositoryFactory(db)
    cache = factory.cache
    near = cache.near
    assert near is not None
    fences = _Fences()
    fences.final = ops - 1
    near.listener.add_observer(fences)
    assert near.listener.wait_listening(30)
    kv = cache.namespace(NAMESPACE)
    rng = random.Random(7)
    reads: list[tuple[str, int, Any]] = []
    ready.set()
    while not (done.is_set() and fences.seen.wait(30)):
        time.sleep(0.0001)  # a busy service, not a spin: keeps the read log small
        kind, keys = _pick(rng)
        fence = fences.last
        if kind == "kv":
            reads.append((f"kv:{keys[0]}", fence, kv.get(keys[0])))
        elif kind == "kv_many":
            found = kv.get_many(keys)
            reads.extend((f"kv:{k}", fence, found.get(k)) for k in keys)
        elif kind == "emb":
            reads.append((f"emb:{keys[0]}", fence, cache.get_embedding(keys[0], model="m")))
        elif kind == "emb_many":
            vectors = cache.get_embeddings(keys, model="m")
            reads.extend((f"emb:{k}", fence, v) for k, v in zip(keys, vectors, strict=True))
        elif kind == "search":
            name = f"search:{keys[0]}"
            reads.append(
                (name, fence, _represent(name, cache.get_search_results(keys[0], index="i")))
            )
        else:
            name = f"llm:{keys[0]}"
            reads.append(
                (name, fence, _represent(name, cache.get_llm_response(keys[0], model="m")))
            )
    stats = cache.stats()
    factory.close()
    db.close()
    out.put((reads, {n: c.model_dump() for n, c in stats.caches.items()}))


def reader_async(url: str, ops: int, ready: Any, done: Any, out: Any) -> None:
    """The same reader through the asyncio API."""
    asyncio.run(_reader_async(url, ops, ready, done, out))


async def _reader_async(url: str, ops: int, ready: Any, done: Any, out: Any) -> None:
    db = AsyncDatabase(url=url, pool_min_size=1, pool_max_size=4, near_cache=True)
    await db.open()
    factory = AsyncRepositoryFactory(db)
    cache = factory.cache
    near = cache.near
    assert near is not None
    fences = _Fences()
    fences.final = ops - 1
    near.listener.add_observer(fences)
    assert near.listener.wait_listening(30)
    kv = cache.namespace(NAMESPACE)
    rng = random.Random(7)
    reads: list[tuple[str, int, Any]] = []
    ready.set()
    while not (done.is_set() and fences.seen.wait(30)):
        await asyncio.sleep(0.0001)
        kind, keys = _pick(rng)
        fence = fences.last
        if kind == "kv":
            reads.append((f"kv:{keys[0]}", fence, await kv.get(keys[0])))
        elif kind == "kv_many":
            found = await kv.get_many(keys)
            reads.extend((f"kv:{k}", fence, found.get(k)) for k in keys)
        elif kind == "emb":
            vector = await cache.get_embedding(keys[0], model="m")
            reads.append((f"emb:{keys[0]}", fence, vector))
        elif kind == "emb_many":
            vectors = await cache.get_embeddings(keys, model="m")
            reads.extend((f"emb:{k}", fence, v) for k, v in zip(keys, vectors, strict=True))
        elif kind == "search":
            name = f"search:{keys[0]}"
            hits = await cache.get_search_results(keys[0], index="i")
            reads.append((name, fence, _represent(name, hits)))
        else:
            name = f"llm:{keys[0]}"
            response = await cache.get_llm_response(keys[0], model="m")
            reads.append((name, fence, _represent(name, response)))
    stats = await cache.stats()
    await factory.close()
    await db.close()
    out.put((reads, {n: c.model_dump() for n, c in stats.caches.items()}))
