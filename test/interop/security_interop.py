"""Interop tests of listeners, TLS and SASL: real clients against a strata
process with an internal PLAINTEXT listener (for the strata CLI to create
SCRAM users), a SASL_SSL listener and an SSL listener that wants client
certificates. Certificates are made with openssl for each run."""
import atexit
import os
import socket
import subprocess
import tempfile
import time

import interop


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

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([
            self.binary, "serve", "--data-dir", self.data, "--num-partitions", "1",
            "--set", "listeners=INTERNAL://%s,SECURE://%s,MTLS://%s" % (self.addr, self.secure, self.mtls),
            "--set", "listener.security.protocol.map=INTERNAL:PLAINTEXT,SECURE:SASL_SSL,MTLS:SSL",
            "--set", "inter.broker.listener.name=INTERNAL",
            "--set", "ssl.keystore.location=" + self.pki["keystore"],
            "--set", "ssl.truststore.location=" + self.pki["ca"],
            "--set", "listener.name.mtls.ssl.client.auth=required",
            "--set", "listener.name.secure.plain.sasl.jaas.config=" + self.jaas,
        ], stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("strata exited with %d; log:\n%s" % (self.proc.returncode, self.tail()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("strata did not start listening; log:\n" + self.tail())


_secure = None


def secure_broker(b):
    """One SecureBroker for every test here, stopped at exit."""
    global _secure
    if _secure is None or _secure.proc.poll() is not None:
        _secure = SecureBroker(b.binary, tempfile.mkdtemp(prefix="strata-interop-sec-"))
        _secure.start()
        atexit.register(lambda: _secure.proc.poll() is None and _secure.stop())
    return _secure


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


TESTS = [test_kcat_sasl_ssl_scram_sha512, test_kafka_python_sasl_plain_tls, test_confluent_kafka_mutual_tls]
