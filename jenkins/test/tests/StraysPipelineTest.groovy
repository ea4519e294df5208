import static org.junit.Assert.assertEquals
import static org.junit.Assert.assertTrue

import java.util.concurrent.TimeUnit
import org.junit.Test

/**
 * The periodic strays job's Jenkinsfile (the checked-in jenkins/strays/Jenkinsfile, and ones
 * this build's rollci renders) through `vars/` on the fake rollci: its schedule, its agent,
 * the variables `rollci strays` gets, its exit code as the build result.
 */
class StraysPipelineTest extends PipelineTestBase {
    static final String UNSET = 'interval=<unset> service=<unset> lab=<unset>'

    @Test
    void theCheckedInJobDeletesTheStraysOfItsCloudOnASchedule() {
        fakeBuild().run(new File(ROOT, 'jenkins/strays/Jenkinsfile').text)
        assertEquals(build.log.toString(), 'SUCCESS', build.result)
        assertEquals([Setup: 'SUCCESS', Strays: 'SUCCESS'], build.stageResults)
        assertEquals([[kind: 'cron', spec: 'H/30 * * * *']], build.triggers)
        assertEquals([[[cloud: 'rackspace', region: 'IAD', delete: true]]], build.callsOf('rollciStrays')*.args)
        List<String> journal = fakeJournal()
        assertEquals(1, journal.size())
        assertTrue(journal[0], journal[0].startsWith('strays '))
        assertTrue(journal[0], journal[0].endsWith(" cloud=rackspace region=IAD delete=true ${UNSET}"))
        assertTrue(build.log.contains("+ exec ${build.workspace}/.rollci-bin/rollci strays"))
    }

    @Test
    void aRenderedJobHandsRollciItsCloudsYamlAndRunsOnItsLabel() {
        String text = render('--cloud', "it's \$HOME", '--clouds-credentials', 'clouds', '--cron', '@hourly',
            '--label', 'sweeper')
        fakeBuild().run(text)
        assertEquals(build.log.toString(), 'SUCCESS', build.result)
        assertEquals([[kind: 'cron', spec: '@hourly']], build.triggers)
        assertEquals(['sweeper'], build.callsOf('rollciStrays')*.agent)
        String journal = fakeJournal()[0]
        String clouds = StepsTest.CREDENTIAL_KINDS.cloudsYamlCredentialsId.journal
        assertTrue(journal, journal.endsWith(" cloud=it's \$HOME region=<unset> delete=true ${UNSET} ${clouds}"))
        assertTrue(build.transcript().contains('clouds.yaml ****'))
    }

    @Test
    void aServerThatCouldNotBeDeletedFailsTheBuild() {
        fakeBuild([FAKE_ROLLCI_EXIT_strays: '3']).run(new File(ROOT, 'jenkins/strays/Jenkinsfile').text)
        assertEquals('FAILURE', build.result)
        assertEquals('FAILURE', build.stageResults.Strays)
        assertTrue(build.log.contains('ERROR: rollci strays: infrastructure error, exit 3'))
    }

    /** `rollci jenkins strays-jenkinsfile ARGS` by this build's rollci, OS_CLOUD and ROLLCI_REGION unset. */
    static String render(String... args) {
        List<String> command = [System.getProperty('rollci.bin'), 'jenkins', 'strays-jenkinsfile'] + (args as List)
        ProcessBuilder pb = new ProcessBuilder(command).directory(ROOT)
        pb.environment().keySet().removeAll(['OS_CLOUD', 'ROLLCI_REGION'])
        Process p = pb.start()
        p.outputStream.close()
        String err = ''
        Thread drain = Thread.start { err = p.errorStream.getText('UTF-8') }
        String out = p.inputStream.getText('UTF-8')
        assertTrue("${command} hung", p.waitFor(60, TimeUnit.SECONDS))
        drain.join()
        assertEquals("${command}: ${err}", 0, p.exitValue())
        out
    }
}
