// KafkaJS against strata: a transactional producer commits one transaction
// and aborts another across two partitions, then a read_committed consumer
// (KafkaJS's default isolation) in a group must see exactly the committed
// records, and an idempotent producer's records beside them. Exits non-zero
// with the reason on any difference. Usage: node transactions.js HOST:PORT
'use strict';

const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const broker = process.argv[2];
  if (!broker) throw new Error('usage: node transactions.js HOST:PORT');
  const kafka = new Kafka({ clientId: 'interop-kafkajs', brokers: [broker], logLevel: logLevel.NOTHING, retry: { retries: 10 } });
  const topic = 'kafkajs-txn-' + process.pid;

  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
  await admin.disconnect();

  const producer = kafka.producer({ transactionalId: 'kafkajs-interop-' + process.pid, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();

  let txn = await producer.transaction();
  await txn.send({ topic, messages: [{ key: 'a', value: 'committed-0', partition: 0 }, { key: 'b', value: 'committed-1', partition: 1 }] });
  await txn.commit();

  txn = await producer.transaction();
  await txn.send({ topic, messages: [{ key: 'a', value: 'aborted-0', partition: 0 }, { key: 'b', value: 'aborted-1', partition: 1 }] });
  await txn.abort();

  txn = await producer.transaction();
  await txn.send({ topic, messages: [{ key: 'c', value: 'committed-2', partition: 0 }] });
  await txn.commit();
  await producer.disconnect();

  const plain = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await plain.connect();
  await plain.send({ topic, acks: -1, messages: [{ value: 'plain-0', partition: 1 }] });
  await plain.disconnect();

  const want = ['committed-0', 'committed-1', 'committed-2', 'plain-0'];
  const seen = [];
  const consumer = kafka.consumer({ groupId: 'kafkajs-interop-' + process.pid, readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out; saw ' + JSON.stringify(seen))), 30000);
    consumer.run({
      eachMessage: async ({ message }) => {
        seen.push(message.value.toString());
        if (seen.length >= want.length) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await done;
  await consumer.disconnect();
  const got = seen.slice().sort();
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error('read_committed saw ' + JSON.stringify(got) + ', want ' + JSON.stringify(want));
  }
  console.log('ok: ' + got.join(' '));
}

main().then(() => process.exit(0), (err) => {
  console.error('kafkajs: ' + (err && err.stack ? err.stack : err));
  process.exit(1);
});
