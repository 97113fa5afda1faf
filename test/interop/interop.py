#!/usr/bin/python3
"""Interop tests: real Kafka clients against a real `strata serve` process.

Each test function gets a Broker (a running strata process) and raises on
failure. The script prints one line per test and a closing
"N passed, N failed" line, and exits non-zero if anything failed.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid


_claimed = set()


def free_addr():
    """A loopback host:port that was free a moment ago, below the kernel's
    ephemeral range: a port from there (what binding :0 gives) can be taken
    as the source port of some client connection before strata binds it."""
    import random
    hi = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            hi = max(int(f.read().split()[0]), 11000)
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(1000):
        port = random.randrange(10000, hi)
        if port in _claimed:
            continue
        _claimed.add(port)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        return "127.0.0.1:%d" % port
    raise RuntimeError("no free loopback port below the ephemeral range")


def api_versions_answered(port, timeout=1.0):
    """Whether a broker on the loopback port answers an ApiVersions v0
    request without an error code."""
    import struct
    client = b"interop"
    req = struct.pack(">hhih", 18, 0, 1, len(client)) + client
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(req)) + req)
            buf = b""
            while len(buf) < 10:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                buf += chunk
    except OSError:
        return False
    _, corr, err = struct.unpack(">iih", buf[:10])
    return corr == 1 and err == 0


class Broker:
    def __init__(self, binary, workdir, extra=None):
        self.binary = binary
        self.extra = extra or ["--num-partitions", "3"]
        self.data = os.path.join(workdir, "data")
        self.log_path = os.path.join(workdir, "strata.log")
        self.addr = free_addr()
        self.port = int(self.addr.rsplit(":", 1)[1])
        self.proc = None

    def command(self):
        return [self.binary, "serve", "--listen", self.addr, "--data-dir", self.data] + self.extra

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=self.logf, stderr=subprocess.STDOUT)
        # The socket is bound (and the kernel accepts connections) before
        # the broker serves: a single node opens its partitions and
        # registers first. Await an ApiVersions answer, not a connect;
        # kafka-python gives up on a broker that is silent for 2 s.
        started = time.time()
        deadline = started + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("strata exited with %d; log:\n%s" % (self.proc.returncode, self.tail()))
            if api_versions_answered(self.port):
                took = time.time() - started
                if took > 2:
                    print("note: strata took %.1fs to answer ApiVersions after starting" % took, flush=True)
                return
            time.sleep(0.05)
        raise RuntimeError("strata did not answer ApiVersions; log:\n" + self.tail())

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=30)
        self.logf.close()
        if sig == signal.SIGTERM and rc != 0:
            raise RuntimeError("strata exited %d on SIGTERM; log:\n%s" % (rc, self.tail()))

    def restart(self):
        self.stop()
        self.start()

    def tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf8", "replace")
        except OSError:
            return ""


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def run(cmd, input=None, timeout=60):
    p = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("%s exited %d: %s" % (" ".join(cmd), p.returncode, p.stderr.decode(errors="replace")))
    return p.stdout.decode()


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ---------------------------------------------------------------- kcat

def test_kcat_metadata(b):
    out = run(["kcat", "-b", b.addr, "-L", "-J"])
    import json
    md = json.loads(out)
    expect(len(md["brokers"]) == 1 and md["brokers"][0]["id"] == 1, "brokers: %r" % md["brokers"])


def test_kcat_produce_consume_codecs(b):
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        topic = unique("kcat-" + codec)
        lines = ["%s-line-%d" % (codec, i) for i in range(500)]
        run(["kcat", "-b", b.addr, "-P", "-t", topic, "-p", "0", "-z", codec,
             "-X", "topic.request.required.acks=-1"], input=("\n".join(lines) + "\n").encode())
        out = run(["kcat", "-b", b.addr, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q"])
        got = out.splitlines()
        expect(got == lines, "%s: consumed %d lines, first %r" % (codec, len(got), got[:2]))


def test_kcat_keys_headers_offsets(b):
    topic = unique("kcat-kv")
    run(["kcat", "-b", b.addr, "-P", "-t", topic, "-p", "0", "-K", ":", "-H", "h1=v1"],
        input=b"k1:v1\nk2:v2\nk3:v3\n")
    out = run(["kcat", "-b", b.addr, "-C", "-t", topic, "-p", "0", "-o", "1", "-e", "-q",
               "-f", "%k=%s@%o;%h\n"])
    expect(out.splitlines() == ["k2=v2@1;h1=v1", "k3=v3@2;h1=v1"], "got %r" % out)
    # Query offsets by timestamp: a time in the past gives offset 0.
    out = run(["kcat", "-b", b.addr, "-Q", "-t", "%s:0:1000" % topic])
    expect(":0:0" in out.replace(" ", "") or "offset 0" in out, "query: %r" % out)


# ------------------------------------------------- first produce to a new topic
# Auto-creation answers the Metadata request that starts it with
# LEADER_NOT_AVAILABLE and no partitions, as Kafka does; every client must
# still deliver its first message to a never-seen topic without the user
# retrying, and promptly.

FIRST_PRODUCE_LIMIT = 5.0  # seconds


def consume_all(b, topic, n):
    out = run(["kcat", "-b", b.addr, "-C", "-t", topic, "-o", "beginning", "-c", str(n), "-e", "-q"], timeout=30)
    return sorted(out.splitlines())


def test_kcat_first_produce_new_topic(b):
    topic = unique("kcat-new")
    start = time.time()
    p = subprocess.run(["kcat", "-b", b.addr, "-P", "-t", topic, "-X", "topic.request.required.acks=-1"],
                       input=b"one\ntwo\n", capture_output=True, timeout=60)
    took = time.time() - start
    err = p.stderr.decode(errors="replace")
    expect(p.returncode == 0 and "fail" not in err.lower() and "error" not in err.lower(),
           "kcat exited %d: %s" % (p.returncode, err))
    expect(took < FIRST_PRODUCE_LIMIT, "first produce took %.1fs" % took)
    got = consume_all(b, topic, 2)
    expect(got == ["one", "two"], "consumed %r" % got)


def test_kafka_python_first_produce_new_topic(b):
    from kafka import KafkaProducer
    topic = unique("kpy-new")
    p = KafkaProducer(bootstrap_servers=b.addr, acks="all")
    start = time.time()
    md = p.send(topic, value=b"first").get(timeout=FIRST_PRODUCE_LIMIT)
    took = time.time() - start
    p.close()
    expect(md.offset == 0, "first record at offset %d" % md.offset)
    expect(took < FIRST_PRODUCE_LIMIT, "first produce took %.1fs" % took)
    expect(consume_all(b, topic, 1) == ["first"], "not consumed back")


def test_confluent_kafka_first_produce_new_topic(b):
    from confluent_kafka import Producer
    topic = unique("ck-new")
    p = Producer({"bootstrap.servers": b.addr, "acks": "all"})
    results = []
    start = time.time()
    p.produce(topic, value=b"first", on_delivery=lambda err, msg: results.append((err, msg.offset())))
    left = p.flush(FIRST_PRODUCE_LIMIT)
    took = time.time() - start
    expect(left == 0 and len(results) == 1, "not delivered in %.1fs (%d left)" % (took, left))
    expect(results[0][0] is None and results[0][1] == 0, "delivery: %r" % (results[0],))
    expect(consume_all(b, topic, 1) == ["first"], "not consumed back")


# ---------------------------------------------------------------- kafka-python

def test_kafka_python(b):
    from kafka import KafkaProducer, KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=b.addr, request_timeout_ms=10000)
    topic = unique("kpy")
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    expect(topic in admin.list_topics(), "created topic not listed")
    for codec in [None, "gzip", "snappy", "lz4", "zstd"]:
        p = KafkaProducer(bootstrap_servers=b.addr, acks="all", compression_type=codec, linger_ms=5)
        futs = [p.send(topic, key=b"k%d" % (i % 7), value=("%s-%d" % (codec, i)).encode()) for i in range(1000)]
        p.flush()
        for f in futs:
            md = f.get(timeout=10)
            expect(md.offset >= 0, "bad offset")
        p.close()
    c = KafkaConsumer(bootstrap_servers=b.addr, auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=5000)
    tps = [TopicPartition(topic, i) for i in range(4)]
    c.assign(tps)
    c.seek_to_beginning()
    seen = set()
    for m in c:
        seen.add(m.value)
        if len(seen) == 5000:
            break
    expect(len(seen) == 5000, "consumed %d distinct of 5000" % len(seen))
    ends = c.end_offsets(tps)
    expect(sum(ends.values()) == 5000, "end offsets %r" % ends)
    begins = c.beginning_offsets(tps)
    expect(all(v == 0 for v in begins.values()), "beginning offsets %r" % begins)
    times = c.offsets_for_times({tp: 0 for tp in tps})
    # Partitions with records answer offset 0 for time 0; empty ones None.
    for tp, v in times.items():
        if ends[tp] > 0:
            expect(v is not None and v.offset == 0, "offsets_for_times %r: %r" % (tp, v))
        else:
            expect(v is None, "offsets_for_times on empty %r: %r" % (tp, v))
    c.close()
    admin.delete_topics([topic])
    deadline = time.time() + 10
    while topic in admin.list_topics() and time.time() < deadline:
        time.sleep(0.1)
    expect(topic not in admin.list_topics(), "deleted topic still listed")
    admin.close()


# ---------------------------------------------------------------- confluent-kafka

def test_confluent_kafka(b):
    from confluent_kafka import Producer, Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": b.addr})
    topic = unique("ck")
    fs = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    fs[topic].result(15)
    md = admin.list_topics(timeout=10)
    expect(topic in md.topics and len(md.topics[topic].partitions) == 3, "metadata after create")
    total = 0
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        errors = []
        acked = [0]

        def cb(err, msg):
            if err is not None:
                errors.append(err)
            else:
                acked[0] += 1
        p = Producer({"bootstrap.servers": b.addr, "enable.idempotence": True, "acks": "all",
                      "compression.type": codec, "linger.ms": 5})
        for i in range(2000):
            p.produce(topic, key=str(i % 11), value="%s-%d" % (codec, i), on_delivery=cb)
            p.poll(0)
        expect(p.flush(30) == 0, "%s: messages left in queue" % codec)
        expect(not errors, "%s: delivery errors %r" % (codec, errors[:3]))
        expect(acked[0] == 2000, "%s: %d acked" % (codec, acked[0]))
        total += 2000
    b.restart()
    c = Consumer({"bootstrap.servers": b.addr, "group.id": unique("g"), "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, i, 0) for i in range(3)])
    seen = set()
    deadline = time.time() + 30
    while len(seen) < total and time.time() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        expect(m.error() is None, "consume error %r" % m.error())
        seen.add(m.value())
    expect(len(seen) == total, "consumed %d distinct of %d after restart" % (len(seen), total))
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    expect(lo == 0 and hi > 0, "watermarks %d %d" % (lo, hi))
    off = c.offsets_for_times([TopicPartition(topic, 0, int(time.time() * 1000) + 3600000)], timeout=10)
    expect(off[0].offset in (-1, hi), "offsets_for_times in the future: %r" % off[0].offset)
    c.close()
    fs = admin.delete_topics([topic])
    fs[topic].result(15)
    # Bad input gets Kafka's errors.
    fs = admin.create_topics([NewTopic("bad/name", num_partitions=1, replication_factor=1)])
    try:
        fs["bad/name"].result(15)
        raise AssertionError("invalid topic name accepted")
    except Exception as e:  # KafkaException with INVALID_TOPIC_EXCEPTION
        expect("INVALID_TOPIC" in str(e) or "nvalid" in str(e), "unexpected error %r" % e)


# ---------------------------------------------------------------- consumer groups

def _group_consume_mixed(b, topic, group, want):
    """A kafka-python and a confluent-kafka member of one group consume
    until `want` distinct values are seen; returns (values, per-client counts)."""
    import threading
    from kafka import KafkaConsumer
    from confluent_kafka import Consumer
    seen, counts, lock, stop = set(), {"kpy": 0, "ck": 0}, threading.Lock(), threading.Event()
    errors = []

    def kpy():
        try:
            c = KafkaConsumer(topic, bootstrap_servers=b.addr, group_id=group, auto_offset_reset="earliest",
                              enable_auto_commit=True, auto_commit_interval_ms=200)
            while not stop.is_set():
                for recs in c.poll(timeout_ms=200).values():
                    with lock:
                        for m in recs:
                            seen.add(m.value)
                            counts["kpy"] += 1
            c.commit()
            c.close()
        except Exception as e:  # surfaced by the caller
            errors.append(e)

    def ck():
        try:
            c = Consumer({"bootstrap.servers": b.addr, "group.id": group, "auto.offset.reset": "earliest",
                          "enable.auto.commit": True, "auto.commit.interval.ms": 200})
            c.subscribe([topic])
            while not stop.is_set():
                m = c.poll(0.2)
                if m is None or m.error() is not None:
                    continue
                with lock:
                    seen.add(m.value())
                    counts["ck"] += 1
            try:
                c.commit(asynchronous=False)
            except Exception as e:  # _NO_OFFSET: auto commit already stored everything
                if "NO_OFFSET" not in str(e):
                    raise
            c.close()
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=kpy), threading.Thread(target=ck)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while time.time() < deadline:
        with lock:
            if len(seen) >= want and counts["kpy"] > 0 and counts["ck"] > 0:
                break
        time.sleep(0.1)
    time.sleep(0.5)  # let auto commits land
    stop.set()
    for t in threads:
        t.join(30)
    expect(not errors, "consumer errors: %r" % errors)
    return seen, counts


def test_group_kafka_python_and_confluent(b):
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=b.addr, request_timeout_ms=10000)
    topic, group = unique("grp"), unique("mixed")
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    p = KafkaProducer(bootstrap_servers=b.addr, acks="all")
    for i in range(400):
        p.send(topic, value=b"%d" % i, partition=i % 4)
    p.flush()
    seen, counts = _group_consume_mixed(b, topic, group, 400)
    expect(len(seen) == 400, "consumed %d distinct of 400" % len(seen))
    expect(counts["kpy"] > 0 and counts["ck"] > 0, "partitions not shared: %r" % counts)
    offsets = admin.list_consumer_group_offsets(group)
    expect(sum(o.offset for o in offsets.values()) == 400, "committed %r" % offsets)
    groups = [g[0] for g in admin.list_consumer_groups()]
    expect(group in groups, "group %s not listed in %r" % (group, groups))
    admin.close()
    p.close()

    b.restart()
    p = KafkaProducer(bootstrap_servers=b.addr, acks="all")
    for i in range(400, 500):
        p.send(topic, value=b"%d" % i, partition=i % 4)
    p.flush()
    p.close()
    seen, counts = _group_consume_mixed(b, topic, group, 100)
    old = [v for v in seen if int(v) < 400]
    expect(not old, "re-read %d records from before the restart, e.g. %r" % (len(old), old[:3]))
    expect(len(seen) == 100, "consumed %d distinct of 100 new" % len(seen))


def test_kcat_group(b):
    topic, group = unique("kcatg"), unique("kg")
    run(["kcat", "-b", b.addr, "-P", "-t", topic, "-p", "0"], input=b"".join(b"m%d\n" % i for i in range(50)))
    out = run(["kcat", "-b", b.addr, "-G", group, "-e", "-q", "-X", "auto.offset.reset=earliest",
               "-X", "enable.auto.commit=true", "-X", "auto.commit.interval.ms=100", topic], timeout=60)
    expect(len(out.splitlines()) == 50, "kcat -G read %d lines" % len(out.splitlines()))
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=b.addr, request_timeout_ms=10000)
    offsets = admin.list_consumer_group_offsets(group)
    admin.close()
    expect(sum(o.offset for o in offsets.values()) == 50, "kcat committed %r" % offsets)


def test_confluent_cooperative_sticky(b):
    """Two librdkafka consumers with the cooperative-sticky assignor: the
    second one joining moves only some partitions (incremental), nothing is
    lost, and the commits cover every record."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": b.addr})
    topic, group = unique("coop"), unique("coopg")
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])[topic].result(15)
    p = Producer({"bootstrap.servers": b.addr})
    for i in range(600):
        p.produce(topic, value=b"%d" % i, partition=i % 6)
    expect(p.flush(30) == 0, "produce did not finish")

    events = {"a": [], "b": []}

    def consumer(name):
        def on_assign(c, parts):
            events[name].append(("assign", sorted(tp.partition for tp in parts)))

        def on_revoke(c, parts):
            events[name].append(("revoke", sorted(tp.partition for tp in parts)))
        c = Consumer({"bootstrap.servers": b.addr, "group.id": group, "auto.offset.reset": "earliest",
                      "partition.assignment.strategy": "cooperative-sticky",
                      "enable.auto.commit": True, "auto.commit.interval.ms": 100,
                      "session.timeout.ms": 6000, "heartbeat.interval.ms": 200})
        c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
        return c

    seen = set()

    def poll(c, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            m = c.poll(0.1)
            if m is not None and m.error() is None:
                seen.add(m.value())

    a = consumer("a")
    deadline = time.time() + 30
    while not events["a"] and time.time() < deadline:
        poll(a, 0.2)
    expect(events["a"] and len(events["a"][0][1]) == 6, "first member's assignment: %r" % events["a"])
    c2 = consumer("b")

    def assigned_b():
        return set(p for kind, ps in events["b"] if kind == "assign" for p in ps)
    # Cooperative rebalancing takes two rounds: the newcomer first gets
    # nothing while the owner revokes, then what was revoked.
    deadline = time.time() + 30
    while not assigned_b() and time.time() < deadline:
        poll(a, 0.1)
        poll(c2, 0.1)
    expect(assigned_b(), "second member never got partitions: %r" % events)
    # Incremental: the first member gave up some partitions and kept the
    # rest; it never had everything revoked at once.
    revoked = [ps for kind, ps in events["a"] if kind == "revoke"]
    expect(revoked and all(0 < len(ps) < 6 for ps in revoked), "revocations of the first member: %r" % events["a"])
    expect(assigned_b().issubset(set(p for ps in revoked for p in ps)), "moved %r but revoked %r" % (assigned_b(), revoked))
    deadline = time.time() + 30
    while len(seen) < 600 and time.time() < deadline:
        poll(a, 0.1)
        poll(c2, 0.1)
    expect(len(seen) == 600, "consumed %d distinct of 600" % len(seen))
    poll(a, 0.3)
    poll(c2, 0.3)
    a.close()
    c2.close()
    from kafka.admin import KafkaAdminClient
    kadmin = KafkaAdminClient(bootstrap_servers=b.addr, request_timeout_ms=10000)
    offsets = kadmin.list_consumer_group_offsets(group)
    kadmin.close()
    expect(sum(o.offset for o in offsets.values()) == 600, "committed %r" % offsets)


# ---------------------------------------------------------------- replication

class Cluster:
    """Three combined broker+controller processes in one quorum, with fast
    failure detection (2 s sessions)."""

    def __init__(self, binary, workdir):
        ctrl = [free_addr() for _ in range(3)]
        voters = ",".join("%d@%s" % (i + 1, a) for i, a in enumerate(ctrl))
        self.nodes = []
        for i in range(3):
            d = os.path.join(workdir, "n%d" % (i + 1))
            os.makedirs(d)
            self.nodes.append(Broker(binary, d, [
                "--node-id", str(i + 1), "--controller-listen", ctrl[i], "--controller-quorum", voters,
                "--set", "broker.heartbeat.interval.ms=200", "--set", "broker.session.timeout.ms=2000",
                "--set", "controller.quorum.election.timeout.ms=500", "--set", "controller.quorum.tick.ms=50"]))
        self.binary = binary
        self.addrs = ",".join(n.addr for n in self.nodes)

    def start(self):
        for n in self.nodes:
            n.start()

    def stop(self):
        for n in self.nodes:
            if n.proc and n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait()
                n.logf.close()

    def cli(self, *args):
        return run([self.binary] + list(args) + ["--brokers", self.addrs, "--timeout", "30s"])

    def describe(self, topic):
        import json
        return json.loads(self.cli("topic", "describe", topic, "--json"))[0]["partitions"]

    def wait(self, what, cond, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if cond():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise AssertionError("timed out waiting for " + what)


def test_replicated_topic_clients_across_leader_kill(b):
    """kcat, kafka-python and confluent-kafka produce with acks=all to an rf=3
    topic, the leader of partition 0 is killed with SIGKILL, they produce
    again (retrying through the failover), and every acknowledged value is
    read back by each of them."""
    from kafka import KafkaProducer, KafkaConsumer, TopicPartition
    from confluent_kafka import Producer, Consumer
    work = tempfile.mkdtemp(prefix="strata-interop-cluster-")
    c = Cluster(b.binary, work)
    c.start()
    try:
        c.wait("three brokers", lambda: c.cli("cluster", "brokers").count("online") == 3)
        topic = unique("rf3")
        c.cli("topic", "create", topic, "-p", "3", "-r", "3", "-c", "min.insync.replicas=2")
        c.wait("a full ISR", lambda: all(len(p["isr"]) == 3 for p in c.describe(topic)))
        acked = set()

        def produce(tag, n):
            values = ["%s-kcat-%d" % (tag, i) for i in range(n)]
            run(["kcat", "-b", c.addrs, "-P", "-t", topic, "-X", "acks=all", "-X", "message.timeout.ms=30000"],
                input=("\n".join(values) + "\n").encode())
            acked.update(values)
            kp = KafkaProducer(bootstrap_servers=c.addrs, acks="all", retries=50, request_timeout_ms=30000)
            futs = {"%s-kpy-%d" % (tag, i): kp.send(topic, value=("%s-kpy-%d" % (tag, i)).encode()) for i in range(n)}
            kp.flush()
            for v, f in futs.items():
                f.get(timeout=30)
                acked.add(v)
            kp.close()
            cp = Producer({"bootstrap.servers": c.addrs, "acks": "all", "enable.idempotence": True,
                           "message.timeout.ms": 30000})
            errs = []

            def cb(err, msg):
                if err is None:
                    acked.add(msg.value().decode())
                else:
                    errs.append(err)
            for i in range(n):
                cp.produce(topic, value=("%s-ck-%d" % (tag, i)).encode(), on_delivery=cb)
            expect(cp.flush(60) == 0, "confluent-kafka: records left undelivered")
            expect(not errs, "confluent-kafka delivery errors: %r" % errs[:3])

        produce("before", 300)
        # Groups need __consumer_offsets, created on first use with 3
        # replicas (like Kafka, never with fewer): use it while all three
        # brokers are up.
        run(["kcat", "-b", c.addrs, "-G", unique("warm-up"), topic, "-e", "-q"])
        c.wait("__consumer_offsets", lambda: "__consumer_offsets" in c.cli("topic", "list", "--internal"))
        leader = c.describe(topic)[0]["leader"]
        victim = c.nodes[leader - 1]
        victim.proc.kill()
        victim.proc.wait()
        victim.logf.close()
        produce("after", 300)
        expect(len(acked) == 1800, "%d values acknowledged, want 1800" % len(acked))

        seen = set(run(["kcat", "-b", c.addrs, "-C", "-t", topic, "-e", "-q", "-o", "beginning"]).split())
        expect(seen == acked, "kcat read %d of %d acknowledged values" % (len(seen & acked), len(acked)))
        kc = KafkaConsumer(bootstrap_servers=c.addrs, auto_offset_reset="earliest", enable_auto_commit=False,
                           consumer_timeout_ms=10000)
        kc.assign([TopicPartition(topic, i) for i in range(3)])
        got = set()
        for m in kc:
            got.add(m.value.decode())
            if len(got) >= len(acked):
                break
        kc.close()
        expect(got == acked, "kafka-python read %d of %d acknowledged values" % (len(got & acked), len(acked)))
        cc = Consumer({"bootstrap.servers": c.addrs, "group.id": unique("g"), "auto.offset.reset": "earliest"})
        cc.subscribe([topic])
        got = set()
        deadline = time.time() + 60
        while len(got) < len(acked) and time.time() < deadline:
            m = cc.poll(0.5)
            if m is not None and m.error() is None:
                got.add(m.value().decode())
        cc.close()
        expect(got == acked, "confluent-kafka read %d of %d acknowledged values" % (len(got & acked), len(acked)))
    finally:
        c.stop()
    shutil.rmtree(work, ignore_errors=True)

# ---------------------------------------------------------------- transactions

def test_confluent_transactions(b):
    """confluent-kafka (librdkafka) transactional producer: a commit, an
    abort, a commit; a read_committed consumer sees exactly the committed
    records and no aborted one, a read_uncommitted one sees all. Then a
    consume-transform-produce step with send_offsets_to_transaction: the
    group's committed offset moves with the committed transaction only."""
    from confluent_kafka import Producer, Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": b.addr})
    topic, out = unique("cktx"), unique("cktx-out")
    fs = admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1) for t in (topic, out)])
    for t in (topic, out):
        fs[t].result(15)
    p = Producer({"bootstrap.servers": b.addr, "transactional.id": unique("tx"), "linger.ms": 5})
    p.init_transactions(30)
    for name, count, commit in (("c1", 100, True), ("ab", 50, False), ("c2", 20, True)):
        p.begin_transaction()
        for i in range(count):
            p.produce(topic, value="%s-%d" % (name, i), partition=i % 2)
        if commit:
            p.commit_transaction(30)
        else:
            p.flush(30)
            p.abort_transaction(30)

    def read(isolation, want):
        c = Consumer({"bootstrap.servers": b.addr, "group.id": unique("g"), "enable.auto.commit": False,
                      "auto.offset.reset": "earliest", "isolation.level": isolation})
        c.assign([TopicPartition(topic, i, 0) for i in range(2)])
        got = []
        deadline = time.time() + 30
        while len(got) < want and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            expect(m.error() is None, "consume error %r" % m.error())
            got.append(m.value().decode())
        # a little longer: nothing more may come
        end = time.time() + 1
        while time.time() < end:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m.value().decode())
        c.close()
        return got
    committed = read("read_committed", 120)
    expect(not [v for v in committed if v.startswith("ab-")], "read_committed consumer saw aborted records")
    expect(sorted(committed) == sorted(["c1-%d" % i for i in range(100)] + ["c2-%d" % i for i in range(20)]),
           "read_committed: %d records, want the 120 committed" % len(committed))
    everything = read("read_uncommitted", 170)
    expect(len(everything) == 170, "read_uncommitted: %d records, want 170" % len(everything))

    # consume-transform-produce: offsets committed in the transaction.
    group = unique("eos")
    c = Consumer({"bootstrap.servers": b.addr, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.subscribe([topic])
    batch = []
    deadline = time.time() + 30
    while len(batch) < 120 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            batch.append(m)
    expect(len(batch) == 120, "transform input: %d of 120" % len(batch))

    def offsets(msgs):
        last = {}
        for m in msgs:
            last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
        return [TopicPartition(topic, part, off + 1) for part, off in sorted(last.items())]
    # An aborted attempt leaves the group's offsets where they were ...
    p.begin_transaction()
    for m in batch:
        p.produce(out, value=m.value())
    p.send_offsets_to_transaction(offsets(batch), c.consumer_group_metadata(), 30)
    p.abort_transaction(30)
    got = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
    expect(all(tp.offset < 0 for tp in got), "offsets committed by an aborted transaction: %r" % got)
    # ... a committed one moves them.
    p.begin_transaction()
    for m in batch:
        p.produce(out, value=m.value())
    want = offsets(batch)
    p.send_offsets_to_transaction(want, c.consumer_group_metadata(), 30)
    p.commit_transaction(30)
    deadline = time.time() + 15
    while True:
        got = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
        if sorted((t.partition, t.offset) for t in got) == sorted((t.partition, t.offset) for t in want) or time.time() > deadline:
            break
        time.sleep(0.1)
    expect(sorted((t.partition, t.offset) for t in got) == sorted((t.partition, t.offset) for t in want),
           "group offsets after the commit: %r, want %r" % (got, want))
    c.close()


def test_kafkajs_transactions(b):
    """KafkaJS (from the npm registry, pinned in test/interop/js): a
    transactional producer commits, aborts and commits across two
    partitions; a read_committed group consumer sees exactly the committed
    records and an idempotent producer's record (test/interop/js/transactions.js)."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
    expect(os.path.isdir(os.path.join(here, "node_modules", "kafkajs")),
           "kafkajs is not installed: scripts/install-deps.sh runs npm ci in test/interop/js")
    r = subprocess.run(["node", os.path.join(here, "transactions.js"), b.addr], capture_output=True, text=True, timeout=120)
    expect(r.returncode == 0, "kafkajs: %s%s" % (r.stdout, r.stderr))


TESTS = [
    test_kcat_metadata,
    test_kcat_produce_consume_codecs,
    test_kcat_keys_headers_offsets,
    test_kcat_first_produce_new_topic,
    test_kafka_python_first_produce_new_topic,
    test_confluent_kafka_first_produce_new_topic,
    test_kafka_python,
    test_confluent_kafka,
    test_group_kafka_python_and_confluent,
    test_kcat_group,
    test_confluent_cooperative_sticky,
    test_replicated_topic_clients_across_leader_kill,
    test_confluent_transactions,
    test_kafkajs_transactions,
]


def _security_tests():
    # security_interop imports this module by name; when run as a script
    # this module is __main__, so make it importable as interop too.
    sys.modules.setdefault("interop", sys.modules[__name__])
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import security_interop
    return security_interop.TESTS


TESTS += _security_tests()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("-k", default="", help="run tests whose name contains this")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="strata-interop-")
    b = Broker(args.bin, work)
    b.start()
    passed = failed = 0
    try:
        for t in TESTS:
            if args.k and args.k not in t.__name__:
                continue
            start = time.time()
            try:
                t(b)
                passed += 1
                print("PASS %s (%.1fs)" % (t.__name__, time.time() - start), flush=True)
            except Exception:
                failed += 1
                print("FAIL %s (%.1fs)" % (t.__name__, time.time() - start), flush=True)
                traceback.print_exc()
                print("--- strata log tail ---\n" + b.tail(), flush=True)
                if b.proc.poll() is not None:
                    b.start()
    finally:
        if b.proc and b.proc.poll() is None:
            b.stop()
    if failed == 0:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("interop: data and log kept in " + work)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
