package wpcdc.search;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.CountDownLatch;
import org.apache.solr.embedded.JettyConfig;
import org.apache.solr.embedded.JettySolrRunner;

/**
 * A standalone Solr for the search recipe: Solr's own embedded Jetty runner (from the test
 * framework on Maven Central) serving a Solr home that examples/search/solr.py prepared.
 *
 * <p>Why this and not a Solr distribution: the jars come from Maven Central like any other
 * dependency (cached in ~/.m2, fetched once by deploy/local/deps.sh), so a fresh machine needs
 * Java 17 and Maven, nothing else.
 *
 * <p>Usage: {@code SolrMain SOLR_HOME PORT PORT_FILE}. PORT 0 takes a free port. Once the cores
 * are loaded, the port actually bound is written to PORT_FILE (atomically: a reader never sees a
 * half-written file), which is how the Python side knows Solr is up. SIGTERM stops Jetty cleanly
 * (the cores are closed, so their index is committed and unlocked).
 */
public final class SolrMain {
  private SolrMain() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: SolrMain SOLR_HOME PORT PORT_FILE");
      System.exit(2);
    }
    Path home = Path.of(args[0]).toAbsolutePath();
    int port = Integer.parseInt(args[1]);
    Path portFile = Path.of(args[2]).toAbsolutePath();
    if (!Files.isRegularFile(home.resolve("solr.xml"))) {
      System.err.println("no solr.xml in " + home + ": prepare the Solr home first (examples/search/solr.py up)");
      System.exit(2);
    }
    JettyConfig config =
        JettyConfig.builder()
            .setPort(port)
            .setContext("/solr")
            .stopAtShutdown(false) // our own hook below stops it, after which we exit
            .waitForLoadingCoresToFinish(120_000L)
            .build();
    JettySolrRunner solr = new JettySolrRunner(home.toString(), config);
    solr.start();
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  try {
                    solr.stop();
                  } catch (Exception e) {
                    e.printStackTrace();
                  } finally {
                    stopped.countDown();
                  }
                }));
    Path tmp = portFile.resolveSibling(portFile.getFileName() + ".tmp");
    Files.writeString(tmp, Integer.toString(solr.getLocalPort()), StandardCharsets.US_ASCII);
    Files.move(tmp, portFile, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    System.out.println("solr ready on " + solr.getBaseUrl() + " (home " + home + ")");
    System.out.flush();
    stopped.await();
  }
}
