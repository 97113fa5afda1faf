"""Interop tests of listeners, TLS and SASL: real clients against a strata
process with an internal PLAINTEXT listener (for the strata CLI to create
SCRAM users), a SASL_SSL listener and an SSL listener that wants client
certificates. Certificates are made with openssl for each run. The broker
runs Kafka's standard authorizer: the internal listener's User:ANONYMOUS is
the super user, every other principal may do anything on any topic and
group, except read the topic FORBIDDEN (a DENY), which each client is shown
to get TOPIC_AUTHORIZATION_FAILED for."""
import atexit
import os
import socket
import subprocess
import tempfile
import time

import interop

FORBIDDEN = "forbidden"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d):
    """A CA, a broker certificate for 127.0.0.1 and a client certificate."""
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=strata-interop-ca", cwd=d)
    for name, cn in (("broker", "localhost"), ("client", "interop-client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
                 "-subj", "/CN=" + cn, cwd=d)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", name + ".crt", "-days", "2", "-extfile", "san.ext", cwd=d)
    with open(os.path.join(d, "broker-keystore.pem"), "w") as out:
        for part in ("broker.key", "broker.crt"):
            with open(os.path.join(d, part)) as f:
                out.write(f.read())
    return {k: os.path.join(d, v) for k, v in (("ca", "ca.pem"), ("keystore", "broker-keystore.pem"),
                                               ("client_cert", "client.crt"), ("client_key", "client.key"))}


class SecureBroker(interop.Broker):
    """A strata process with INTERNAL (PLAINTEXT), SECURE (SASL_SSL) and
    MTLS (SSL, client certificates required) listeners."""

    def __init__(self, binary, workdir):
        super().__init__(binary, workdir)
        self.pki = make_pki(workdir)
        self.secure = interop.free_addr()
        self.mtls = interop.free_addr()
        self.jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
                     'user_pat="pat-secret";')

    def command(self):
        return [
            self.binary, "serve", "--data-dir", self.data, "--num-partitions", "1",
            "--set", "listeners=INTERNAL://%s,SECURE://%s,MTLS://%s" % (self.addr, self.secure, self.mtls),
            "--set", "listener.security.protocol.map=INTERNAL:PLAINTEXT,SECURE:SASL_SSL,MTLS:SSL",
            "--set", "inter.broker.listener.name=INTERNAL",
            "--set", "ssl.keystore.location=" + self.pki["keystore"],
            "--set", "ssl.truststore.location=" + self.pki["ca"],
            "--set", "listener.name.mtls.ssl.client.auth=required",
            "--set", "listener.name.secure.plain.sasl.jaas.config=" + self.jaas,
            "--set", "authorizer.class.name=" + AUTHORIZER,
            "--set", "super.users=User:ANONYMOUS",
        ]


_secure = None


def secure_broker(b):
    """One SecureBroker for every test here, stopped at exit."""
    global _secure
    if _secure is None or _secure.proc.poll() is not None:
        _secure = SecureBroker(b.binary, tempfile.mkdtemp(prefix="strata-interop-sec-"))
        _secure.start()
        atexit.register(lambda: _secure.proc.poll() is None and _secure.stop())
        grant_acls(_secure)
    return _secure


def grant_acls(s):
    """ALL on every topic and group for everyone, READ on FORBIDDEN denied
    (a deny wins; DESCRIBE stays allowed, so the topic is seen but not
    read), and FORBIDDEN holding one record."""
    acl = [s.binary, "acl", "create", "--brokers", s.addr, "--principal", "User:*"]
    interop.run(acl + ["--operation", "all", "--topic", "*"])
    interop.run(acl + ["--operation", "all", "--group", "*"])
    interop.run(acl + ["--operation", "read", "--topic", FORBIDDEN, "--deny"])
    interop.run([s.binary, "topic", "create", FORBIDDEN, "--brokers", s.addr])
    interop.run([s.binary, "produce", FORBIDDEN, "--brokers", s.addr], input=b"secret\n")


def output_of(cmd, timeout):
    """rc and combined output of cmd, killed after timeout (rc None)."""
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
        return p.returncode, (p.stdout or b"").decode(errors="replace") + (p.stderr or b"").decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")


def test_kcat_sasl_ssl_scram_sha512(b):
    s = secure_broker(b)
    interop.run([s.binary, "user", "create", "kcat-user", "--new-password", "kcat-secret",
                 "--mechanism", "SCRAM-SHA-512", "--brokers", s.addr])
    topic = interop.unique("kcat-scram")
    sasl = ["-b", s.secure, "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
            "-X", "sasl.username=kcat-user", "-X", "sasl.password=kcat-secret", "-X", "ssl.ca.location=" + s.pki["ca"]]
    interop.run(["kcat"] + sasl + ["-P", "-t", topic], input=b"one\ntwo\nthree\n")
    out = interop.run(["kcat"] + sasl + ["-C", "-t", topic, "-o", "beginning", "-e", "-q"])
    interop.expect(out.split() == ["one", "two", "three"], "consumed %r" % out)
    # A wrong password: kcat fails, told the authentication failed.
    bad = ["-b", s.secure, "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
           "-X", "sasl.username=kcat-user", "-X", "sasl.password=wrong", "-X", "ssl.ca.location=" + s.pki["ca"]]
    p = subprocess.run(["kcat"] + bad + ["-L", "-m", "5"], capture_output=True, timeout=60)
    err = p.stderr.decode(errors="replace") + p.stdout.decode(errors="replace")
    interop.expect(p.returncode != 0 and "uthentication" in err, "wrong password: rc %d, %s" % (p.returncode, err))
    # A denied read: librdkafka reports the broker's TOPIC_AUTHORIZATION_FAILED.
    rc, out = output_of(["kcat"] + sasl + ["-C", "-t", FORBIDDEN, "-o", "beginning", "-e", "-c", "1"], 30)
    interop.expect("Topic authorization failed" in out and "secret" not in out,
                   "kcat reading %s: rc %s, %s" % (FORBIDDEN, rc, out))


def test_kafka_python_sasl_plain_tls(b):
    from kafka import KafkaConsumer, KafkaProducer
    s = secure_broker(b)
    topic = interop.unique("kp-plain")
    common = dict(bootstrap_servers=s.secure, security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
                  sasl_plain_username="pat", sasl_plain_password="pat-secret", ssl_cafile=s.pki["ca"])
    p = KafkaProducer(**common)
    for i in range(5):
        p.send(topic, ("m%d" % i).encode()).get(timeout=30)
    p.close()
    c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=15000, **common)
    got = [m.value.decode() for m in c]
    c.close()
    interop.expect(got == ["m%d" % i for i in range(5)], "consumed %r" % got)
    # A denied read: the fetch fails with TopicAuthorizationFailedError.
    from kafka import TopicPartition
    from kafka.errors import TopicAuthorizationFailedError
    c = KafkaConsumer(**common)
    tp = TopicPartition(FORBIDDEN, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    denied, deadline = None, time.time() + 30
    while denied is None and time.time() < deadline:
        try:
            recs = c.poll(timeout_ms=1000)
            interop.expect(not recs, "kafka-python read %s: %r" % (FORBIDDEN, recs))
        except TopicAuthorizationFailedError as e:
            denied = e
    c.close()
    interop.expect(denied is not None, "kafka-python reading %s: no TopicAuthorizationFailedError" % FORBIDDEN)


def test_confluent_kafka_mutual_tls(b):
    from confluent_kafka import Consumer, Producer
    s = secure_broker(b)
    topic = interop.unique("ck-mtls")
    conf = {"bootstrap.servers": s.mtls, "security.protocol": "SSL", "ssl.ca.location": s.pki["ca"],
            "ssl.certificate.location": s.pki["client_cert"], "ssl.key.location": s.pki["client_key"]}
    p = Producer(conf)
    errs = []
    for i in range(3):
        p.produce(topic, ("t%d" % i).encode(), on_delivery=lambda e, m: e and errs.append(e))
    left = p.flush(30)
    interop.expect(left == 0 and not errs, "delivery over mTLS: %d left, errors %r" % (left, errs))
    c = Consumer(dict(conf, **{"group.id": interop.unique("g"), "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got, deadline = [], time.time() + 30
    while len(got) < 3 and time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value().decode())
    c.close()
    interop.expect(got == ["t0", "t1", "t2"], "consumed %r" % got)
    # A denied read: the consumer's error is TOPIC_AUTHORIZATION_FAILED.
    from confluent_kafka import KafkaError, TopicPartition
    c = Consumer(dict(conf, **{"group.id": interop.unique("g"), "enable.auto.commit": False}))
    c.assign([TopicPartition(FORBIDDEN, 0, -2)])  # -2: the beginning
    err, deadline = None, time.time() + 30
    while err is None and time.time() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        interop.expect(m.error() is not None, "confluent-kafka read %s: %r" % (FORBIDDEN, m.value()))
        err = m.error()
    c.close()
    interop.expect(err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED,
                   "confluent-kafka reading %s: %r" % (FORBIDDEN, err))


TESTS = [test_kcat_sasl_ssl_scram_sha512, test_kafka_python_sasl_plain_tls, test_confluent_kafka_mutual_tls]
