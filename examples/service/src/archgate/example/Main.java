package archgate.example;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import net.jpountz.lz4.LZ4Compressor;
import net.jpountz.lz4.LZ4Factory;
import net.jpountz.lz4.LZ4FastDecompressor;

/**
 * The example service of archgate's main job: a Java service that depends on
 * a real JNI library (Debian's lz4-java, liblz4-java.so for the image's CPU).
 *
 * At start it loads the library the way a service does (System.loadLibrary,
 * from java.library.path), compresses and decompresses a buffer with LZ4's
 * native (JNI) codec, prints its ready line, and then keeps serving (here:
 * sleeping) until it is stopped. A library built for another CPU stops it at
 * the first step with java.lang.UnsatisfiedLinkError.
 *
 * Arguments (for tests and benchmarks): --once exits 0 after the ready line;
 * --quiet prints no ready line; --fail exits 3 before being ready;
 * --crash-unless-interpreted crashes the JVM with SIGSEGV (a read of address
 * 0) unless it runs with -Xint — a stand-in for a JIT that an emulator
 * mis-executes; anything else (e.g. a test's marker) is ignored. As a Java
 * agent (-javaagent:/app/service.jar=crash-unless-interpreted, e.g. in
 * JAVA_TOOL_OPTIONS) it does the same to any JVM, `java -version` included;
 * as -javaagent:/app/service.jar=hang it keeps any JVM from ever finishing.
 */
public final class Main {
    public static void main(String[] args) throws Exception {
        boolean once = Arrays.asList(args).contains("--once");
        boolean quiet = Arrays.asList(args).contains("--quiet");
        if (Arrays.asList(args).contains("--fail")) {
            System.err.println("example service: asked to fail (--fail)");
            System.exit(3);
        }
        if (Arrays.asList(args).contains("--crash-unless-interpreted")) {
            crashUnlessInterpreted();
        }
        // The JNI library, as a service loads it: by name, from java.library.path.
        System.loadLibrary("lz4-java");
        LZ4Factory lz4 = LZ4Factory.nativeInstance();
        byte[] data = new byte[64 * 1024];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) "archgate service ".charAt(i % 17);
        }
        LZ4Compressor compressor = lz4.fastCompressor();
        byte[] packed = compressor.compress(data);
        LZ4FastDecompressor decompressor = lz4.fastDecompressor();
        byte[] unpacked = decompressor.decompress(packed, data.length);
        if (!Arrays.equals(data, unpacked)) {
            throw new IllegalStateException("LZ4 round trip changed the data");
        }
        if (!quiet) {
            System.out.println("example service ready: lz4 " + lz4 + " packed " + data.length
                + " bytes into " + packed.length + " on " + System.getProperty("os.arch")
                + " as uid " + uid());
            System.out.flush();
        }
        if (once) {
            return;
        }
        while (true) {
            Thread.sleep(60_000L);
        }
    }

    /** The agent entry point (Premain-Class). */
    public static void premain(String options) throws Exception {
        if ("crash-unless-interpreted".equals(options)) {
            crashUnlessInterpreted();
        }
        if ("hang".equals(options)) {
            while (true) {
                Thread.sleep(60_000L);
            }
        }
    }

    /** A SIGSEGV (a read of address 0) unless the JVM runs with -Xint. */
    private static void crashUnlessInterpreted() throws Exception {
        if (System.getProperty("java.vm.info", "").contains("interpreted")) {
            return;
        }
        Class<?> unsafeClass = Class.forName("sun.misc.Unsafe");
        java.lang.reflect.Field field = unsafeClass.getDeclaredField("theUnsafe");
        field.setAccessible(true);
        Object unsafe = field.get(null);
        unsafeClass.getMethod("getByte", long.class).invoke(unsafe, 0L);
    }

    /** The real uid, from /proc/self/status (the image may have no /etc/passwd). */
    private static String uid() throws java.io.IOException {
        for (String line : java.nio.file.Files.readAllLines(
                java.nio.file.Paths.get("/proc/self/status"), StandardCharsets.UTF_8)) {
            if (line.startsWith("Uid:")) {
                return line.substring(4).trim().split("\\s+")[0];
            }
        }
        return "?";
    }

    private Main() {
    }
}
