import java.nio.file.Files
import org.junit.After
import org.junit.Before
import org.junit.Rule
import org.junit.rules.TestName
import org.junit.rules.TestWatcher
import org.junit.runner.Description
import rollci.harness.Build

/**
 * What every harness test shares: a temp folder removed afterwards, a build configured with
 * the library (`vars/` of the repository), a clean agent environment and two credentials,
 * and on failure the build's log (its tail printed, the whole of it in the logs folder).
 */
abstract class PipelineTestBase {
    static final File ROOT = new File(System.getProperty('rollci.root')).canonicalFile
    static final File FIXTURES = new File(ROOT, 'jenkins/test/fixtures')
    static final File FAKE = new File(FIXTURES, 'fake-rollci')
    static final String SECRET = 's3cr3t-Pa55'
    static final String ES_SECRET = 'es-Pa55w0rd!'
    static final String CLOUDS_SECRET = 'clouds-Pa55'
    /** The secret file `clouds`: a clouds.yaml with its password. */
    static final String CLOUDS_YAML = '''clouds:
  rackspace:
    auth:
      auth_url: https://identity.example.com/v2.0/
      username: rollci-bot
      password: clouds-Pa55
    region_name: IAD
'''
    static final String SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

    @Rule public TestName name = new TestName()
    @Rule public TestWatcher watcher = new TestWatcher() {
        @Override
        protected void failed(Throwable e, Description d) {
            if (build == null) { return }
            File logs = new File(System.getProperty('rollci.logs') ?: System.getProperty('java.io.tmpdir'))
            logs.mkdirs()
            File f = new File(logs, "${d.className}.${d.methodName}.log")
            f.text = build.transcript()
            List<String> lines = build.log.toString().readLines()
            println "---- ${d.methodName}: last lines of the build log (all of it in ${f}):"
            println lines.drop(Math.max(0, lines.size() - 60)).join('\n')
        }
    }

    File tmp
    Build build

    @Before
    void makeTmp() {
        tmp = Files.createTempDirectory('rollci-groovy-').toFile()
    }

    @After
    void removeTmp() {
        tmp?.deleteDir()
    }

    /** A build with the library, a clean agent environment and the credentials `cloud`, `clouds`, `es`, `token`. */
    Build newBuild(Map<String, String> env = [:]) {
        build = new Build(Files.createTempDirectory(tmp.toPath(), 'build-').toFile())
        build.libraryRoot = ROOT
        build.jobName = name.methodName
        build.agentEnv = [PATH: SYSTEM_PATH, HOME: tmp.path, LANG: 'C.UTF-8'] + env
        build.credentials = [
            cloud: [username: 'rollci-bot', password: SECRET],
            clouds: [fileName: 'clouds.yaml', content: CLOUDS_YAML],
            es: [username: 'elastic', password: ES_SECRET],
            token: [secret: 'tok-123456'],
        ]
        build
    }

    /** A build whose rollci is the fake (by ROLLCI_BIN). */
    Build fakeBuild(Map<String, String> env = [:]) {
        newBuild([ROLLCI_BIN: FAKE.path] + env)
    }

    static String demoJenkinsfile() {
        File generated = new File(ROOT, 'jenkins/demo/Jenkinsfile')
        (generated.file ? generated : new File(FIXTURES, 'Jenkinsfile.demo')).text
    }

    /** The lines the fake rollci appended to the journal of `ws` (relative to the build's workspace). */
    List<String> fakeJournal(File workspace = build.workspace) {
        new File(workspace, '.rollci/state.json').readLines()
    }
}
