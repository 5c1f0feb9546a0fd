package ringbroker.interop;

import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.BitSet;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Issue 11: a kafka-clients 4.4 producer with DEFAULT settings (acks=all, enable.idempotence=true) produces
 * N records while the test restarts the broker once (it prints "PROGRESS n" lines to time that), then a
 * consumer group reads the topic: every record exactly once. Prints "RESULT key=value ..." and exits 0 only
 * if nothing is missing or duplicated.
 *
 * Issue 18 runs it against a three-broker cluster with REPLICATION_FACTOR 3 (and min.insync.replicas=2) while
 * a partition leader is killed.
 *
 * Usage: DefaultProducerRoundTrip BOOTSTRAP TOPIC PARTITIONS RECORDS [REPLICATION_FACTOR]
 */
public final class DefaultProducerRoundTrip {
    /** Bytes of each record's value: the 8-byte sequence number plus padding (the 100-byte records). */
    private static final int VALUE_BYTES = 100;
    /** A PROGRESS line every this many sends. */
    private static final int PROGRESS_EVERY = 50_000;
    /** The consumer gives up after this long without a new record. */
    private static final Duration IDLE_LIMIT = Duration.ofSeconds(60);

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int partitions = Integer.parseInt(args[2]);
        int records = Integer.parseInt(args[3]);
        short replicationFactor = args.length > 4 ? Short.parseShort(args[4]) : 1;

        Properties adminProps = new Properties();
        adminProps.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(adminProps)) {
            NewTopic newTopic = new NewTopic(topic, partitions, replicationFactor);
            if (replicationFactor > 1) {
                newTopic.configs(java.util.Map.of("min.insync.replicas", "2"));
            }
            admin.createTopics(List.of(newTopic)).all().get();
        }

        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        // Nothing else: acks, idempotence, retries, in-flight limit and timeouts are the client's defaults.
        AtomicLong acked = new AtomicLong();
        AtomicReference<Exception> firstError = new AtomicReference<>();
        AtomicLong errors = new AtomicLong();
        long started = System.nanoTime();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            for (int i = 0; i < records; i++) {
                byte[] value = new byte[VALUE_BYTES];
                ByteBuffer.wrap(value).putLong(i);
                byte[] key = Integer.toString(i % 1000).getBytes();
                producer.send(new ProducerRecord<>(topic, key, value), (meta, e) -> {
                    if (e != null) {
                        errors.incrementAndGet();
                        firstError.compareAndSet(null, e);
                    } else {
                        acked.incrementAndGet();
                    }
                });
                if ((i + 1) % PROGRESS_EVERY == 0) {
                    System.out.println("PROGRESS " + (i + 1) + " acked=" + acked.get());
                    System.out.flush();
                }
            }
            producer.flush();
        }
        double produceSeconds = (System.nanoTime() - started) / 1e9;
        System.out.println("PRODUCED acked=" + acked.get() + " errors=" + errors.get()
                + (firstError.get() == null ? "" : " first_error=" + firstError.get()));
        System.out.flush();

        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.GROUP_ID_CONFIG, "java-roundtrip-" + topic);
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        BitSet seen = new BitSet(records);
        long duplicates = 0;
        long foreign = 0;
        long consumed = 0;
        long consumeStarted = System.nanoTime();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of(topic));
            long lastProgress = System.nanoTime();
            while (seen.cardinality() < records
                    && System.nanoTime() - lastProgress < IDLE_LIMIT.toNanos()) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    lastProgress = System.nanoTime();
                    consumed++;
                    long seq = ByteBuffer.wrap(r.value()).getLong();
                    if (seq < 0 || seq >= records) {
                        foreign++;
                    } else if (seen.get((int) seq)) {
                        duplicates++;
                    } else {
                        seen.set((int) seq);
                    }
                }
            }
            // Anything beyond the expected records (duplicates written after the last one) shows up here.
            for (int i = 0; i < 3; i++) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    consumed++;
                    long seq = ByteBuffer.wrap(r.value()).getLong();
                    if (seq >= 0 && seq < records && seen.get((int) seq)) {
                        duplicates++;
                    } else {
                        foreign++;
                    }
                }
            }
            consumer.commitSync();
        }
        double consumeSeconds = (System.nanoTime() - consumeStarted) / 1e9;
        long missing = records - seen.cardinality();
        System.out.printf("RESULT acked=%d errors=%d consumed=%d missing=%d duplicates=%d foreign=%d "
                        + "produce_seconds=%.1f consume_seconds=%.1f%n",
                acked.get(), errors.get(), consumed, missing, duplicates, foreign, produceSeconds,
                consumeSeconds);
        System.exit(missing == 0 && duplicates == 0 && foreign == 0 && errors.get() == 0 ? 0 : 1);
    }
}
