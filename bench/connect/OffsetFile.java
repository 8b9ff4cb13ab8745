// Reads and writes Kafka Connect standalone's offset file (FileOffsetBackingStore): a Java-serialized
// HashMap<byte[], byte[]> of JSON key -> JSON value. The bench uses it to start Debezium at the same
// binlog position as wpcdc. Run with the JDK's source launcher, no build:
//   java OffsetFile.java read FILE
//   java OffsetFile.java write FILE KEY_JSON VALUE_JSON
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;

public class OffsetFile {
    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        String cmd = args[0];
        File file = new File(args[1]);
        if (cmd.equals("read")) {
            if (!file.exists()) return;
            try (ObjectInputStream in = new ObjectInputStream(new FileInputStream(file))) {
                Map<byte[], byte[]> raw = (Map<byte[], byte[]>) in.readObject();
                for (Map.Entry<byte[], byte[]> e : raw.entrySet()) {
                    System.out.println(new String(e.getKey(), StandardCharsets.UTF_8) + "\t"
                        + (e.getValue() == null ? "null" : new String(e.getValue(), StandardCharsets.UTF_8)));
                }
            }
        } else if (cmd.equals("write")) {
            Map<byte[], byte[]> raw = new HashMap<>();
            raw.put(args[2].getBytes(StandardCharsets.UTF_8), args[3].getBytes(StandardCharsets.UTF_8));
            try (ObjectOutputStream out = new ObjectOutputStream(new FileOutputStream(file))) {
                out.writeObject(raw);
            }
        } else {
            throw new IllegalArgumentException("read|write");
        }
    }
}
