// Runs JUnit 4 test classes, `jobs` methods at a time, and sets the exit code (`groovy` alone
// exits 0 even when tests fail). Usage: Runner <jobs> <Class>…; HARNESS_TESTS=regex filters
// `Class.method`. Prints each result with its duration and `N passed, N failed` last.
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import org.junit.runner.JUnitCore
import org.junit.runner.Request
import org.junit.runner.Result

int jobs = args[0] as int
String filter = System.getenv('HARNESS_TESTS') ?: '.*'
List<Map> tests = args.drop(1).collectMany { String name ->
    Class c = this.class.classLoader.loadClass(name)
    Request.aClass(c).runner.description.children.collect { [cls: c, method: it.methodName] }
}.findAll { "${it.cls.name}.${it.method}" ==~ filter }

int passed = 0
int failed = 0
Object out = new Object()
def pool = Executors.newFixedThreadPool(jobs)
long start = System.currentTimeMillis()
tests.each { Map t ->
    pool.submit {
        long t0 = System.currentTimeMillis()
        Result r
        try {
            r = new JUnitCore().run(Request.method(t.cls, t.method))
        } catch (Throwable e) {
            r = null
            e.printStackTrace()
        }
        String secs = String.format('%.1fs', (System.currentTimeMillis() - t0) / 1000.0)
        synchronized (out) {
            if (r != null && r.wasSuccessful() && r.runCount > 0) {
                passed++
                println "PASS ${t.cls.name}.${t.method} (${secs})"
            } else {
                failed++
                println "FAIL ${t.cls.name}.${t.method} (${secs})"
                r?.failures?.each { println it.trace.readLines().findAll { l -> !(l =~ /^\s+at (java\.|jdk\.|org\.codehaus|org\.junit|groovy\.lang|sun\.)/) }.take(25).join('\n') }
            }
        }
    }
}
pool.shutdown()
pool.awaitTermination(1, TimeUnit.HOURS)
println String.format('total %.1fs', (System.currentTimeMillis() - start) / 1000.0)
println "${passed} passed, ${failed} failed"
System.exit(failed > 0 || passed == 0 ? 1 : 0)
