// Read a topic from the beginning with the Java client (kafka-clients' KafkaConsumer, what Spring
// Kafka, Kafka Streams and Connect build on) and print one JSON line per record on stdout:
//
//   {"partition":0,"offset":12,"key":"...","value":"..." | null,"headers":[["k","v"],...]}
//
// Usage: java -cp '<kafka lib>/*:<dir of this class>' ReadTopic BOOTSTRAP TOPIC [MAX] [TIMEOUT_MS]
//
// Read-committed, partitions assigned by hand (no group, nothing committed), and it stops at the
// end offsets the broker reported at start (the last stable offsets), after MAX records, or after
// TIMEOUT_MS (exit 2). Not the console consumer of kafka-tools: its text output cannot tell a
// tombstone from the value "null", nor a comma inside a header from the one between headers.
// Compiled by tests/integration/clients.py against the broker's own jars.

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class ReadTopic {
    private static String text(byte[] bytes) {
        return bytes == null ? null : new String(bytes, StandardCharsets.UTF_8);
    }

    private static boolean atEnd(KafkaConsumer<?, ?> consumer, List<TopicPartition> parts,
                                 Map<TopicPartition, Long> ends) {
        for (TopicPartition tp : parts) {
            if (consumer.position(tp) < ends.get(tp)) return false;
        }
        return true;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        long max = args.length > 2 ? Long.parseLong(args[2]) : Long.MAX_VALUE;
        long deadline = System.currentTimeMillis() + (args.length > 3 ? Long.parseLong(args[3]) : 60_000L);

        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("isolation.level", "read_committed");
        props.put("enable.auto.commit", "false");
        props.put("auto.offset.reset", "earliest");
        props.put("client.id", "wpcdc-java-reader");
        ObjectMapper json = new ObjectMapper();
        long count = 0;
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> parts = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
                parts.add(new TopicPartition(topic, p.partition()));
            }
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            Map<TopicPartition, Long> ends = consumer.endOffsets(parts);
            while (count < max && !atEnd(consumer, parts, ends)) {
                if (System.currentTimeMillis() > deadline) {
                    System.err.println("error: timeout, " + count + " records read");
                    System.exit(2);
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    if (count >= max) break;
                    count++;
                    List<List<String>> headers = new ArrayList<>();
                    for (Header h : r.headers()) headers.add(Arrays.asList(h.key(), text(h.value())));
                    Map<String, Object> out = new LinkedHashMap<>();
                    out.put("partition", r.partition());
                    out.put("offset", r.offset());
                    out.put("key", text(r.key()));
                    out.put("value", text(r.value()));
                    out.put("headers", headers);
                    System.out.println(json.writeValueAsString(out));
                }
            }
        } catch (Exception e) {
            System.out.flush();
            System.err.println("error: " + e.getClass().getName() + ": " + e.getMessage());
            System.exit(1);
        }
        System.out.flush();
    }
}
