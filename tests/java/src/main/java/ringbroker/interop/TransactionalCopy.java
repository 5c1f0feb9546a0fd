package ringbroker.interop;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Issue 22: the 4.4 Java transactional producer in a read-process-write loop. Reads every record of partition 0
 * of SOURCE (read_committed, in consumer group GROUP), writes each value upper-cased to partition 0 of SINK in a
 * transaction together with the consumed offsets (sendOffsetsToTransaction), and aborts every third transaction
 * on purpose (rewinding to the last committed offset, so those records are processed again). Stops once EXPECTED
 * records were committed and prints "COMMITTED n ABORTED m". Any failure throws (exit status 1).
 *
 * Usage: TransactionalCopy BOOTSTRAP SOURCE SINK GROUP TRANSACTIONAL_ID EXPECTED
 */
public final class TransactionalCopy {
    private static final Duration POLL = Duration.ofMillis(500);
    /** The whole copy must finish within this; a broker that stalls fails the test. */
    private static final long DEADLINE_MS = 120_000;
    private static final int RECORDS_PER_TRANSACTION = 10;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String source = args[1];
        String sink = args[2];
        String group = args[3];
        String transactionalId = args[4];
        int expected = Integer.parseInt(args[5]);
        TopicPartition in = new TopicPartition(source, 0);

        Properties c = new Properties();
        c.put("bootstrap.servers", bootstrap);
        c.put("group.id", group);
        c.put("isolation.level", "read_committed");
        c.put("enable.auto.commit", "false");
        c.put("auto.offset.reset", "earliest");
        c.put("max.poll.records", String.valueOf(RECORDS_PER_TRANSACTION));
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());

        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", transactionalId);
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());

        int committed = 0;
        int aborted = 0;
        int transactions = 0;
        long deadline = System.currentTimeMillis() + DEADLINE_MS;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c);
                KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            consumer.assign(List.of(in));
            producer.initTransactions();
            while (committed < expected) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("timed out after " + committed + " committed records");
                }
                ConsumerRecords<String, String> records = consumer.poll(POLL);
                if (records.isEmpty()) {
                    continue;
                }
                producer.beginTransaction();
                long next = -1;
                for (ConsumerRecord<String, String> record : records) {
                    producer.send(new ProducerRecord<>(sink, 0, record.key(), record.value().toUpperCase()));
                    next = record.offset() + 1;
                }
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                offsets.put(in, new OffsetAndMetadata(next));
                producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                transactions++;
                if (transactions % 3 == 0) {
                    producer.abortTransaction();
                    aborted += records.count();
                    OffsetAndMetadata last = consumer.committed(java.util.Set.of(in)).get(in);
                    consumer.seek(in, last == null ? 0 : last.offset());
                } else {
                    producer.commitTransaction();
                    committed += records.count();
                }
            }
        }
        System.out.println("COMMITTED " + committed + " ABORTED " + aborted);
    }
}
