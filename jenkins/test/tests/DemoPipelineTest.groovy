import static org.junit.Assert.assertEquals
import static org.junit.Assert.assertFalse
import static org.junit.Assert.assertTrue

import groovy.json.JsonSlurper
import java.security.SecureRandom
import org.junit.Test
import rollci.harness.Build
import rollci.harness.Procs

/**
 * The demo lab's Jenkinsfile through `vars/` and the real rollci: real ansible-playbook runs,
 * a real haproxy, the smoke suite. Each build has its own workspace and loopback block.
 */
class DemoPipelineTest extends PipelineTestBase {
    static final List<String> STAGES = ['Setup', 'Pre-Deployment', 'Deployment', 'Post-Deployment Validation',
        'Upgrade', 'Post-Upgrade Validation', 'Reporting', 'Clean Up']
    static final SecureRandom RANDOM = new SecureRandom()

    @Test
    void theDemoPipelineSucceeds() {
        Build b = demo(demoJenkinsfile())
        assertEquals('SUCCESS', b.result)
        assertEquals(STAGES.collectEntries { [it, 'SUCCESS'] }, b.stageResults)
        assertTrue(b.junit.toString(), b.junit.total >= 5)
        assertEquals(0, b.junit.failed)
        assertTrue(b.junit.files.contains('.rollci/reports/junit/smoke-after.xml'))
        ['.rollci/reports/summary.json', '.rollci/reports/report.html', '.rollci/evidence/probes.jsonl'].each {
            assertTrue("${it} archived", b.archived.contains(it))
        }
        assertTrue(b.archived.any { it.startsWith('.rollci/logs/') && it.endsWith('.log') })
        Map summary = json('.rollci/reports/summary.json')
        assertEquals('passed', summary.outcome)
        assertEquals(true, summary.flow_complete)
        assertEquals('Declarative: Post Actions', b.callsOf('rollciCleanup')[-1].stage)
        assertEverythingDestroyed()
    }

    @Test
    void aFailingSmokeTestIsUnstableAndCleanupStillRuns() {
        Build b = demo(demoJenkinsfile(), [ROLLCI_SMOKE_BREAK: 'test_list_records'])
        assertEquals('UNSTABLE', b.result)
        assertEquals('UNSTABLE', b.stageResults['Post-Deployment Validation'])
        assertEquals('UNSTABLE', b.stageResults['Post-Upgrade Validation'])
        assertEquals('SUCCESS', b.stageResults['Upgrade'])
        assertEquals('SUCCESS', b.stageResults['Clean Up'])
        assertTrue(b.junit.failed >= 2)
        assertTrue(b.log.contains('WARNING: rollci verify:after: the system under test failed a check (exit 1)'))
        assertEverythingDestroyed()
    }

    @Test
    void aFailingSmokeTestFailsTheBuildWhenConfiguredAndCleanupStillRuns() {
        String text = demoJenkinsfile()
        String failing = text.replace("checkFailure: 'UNSTABLE'", "checkFailure: 'FAILURE'")
        assertEquals(3, text.count("checkFailure: 'UNSTABLE'"))
        Build b = demo(failing, [ROLLCI_SMOKE_BREAK: 'test_list_records'])
        assertEquals('FAILURE', b.result)
        assertEquals('FAILURE', b.stageResults['Post-Deployment Validation'])
        STAGES.drop(4).each { assertEquals(it, 'SKIPPED', b.stageResults[it]) }
        assertTrue(b.log.contains('Stage "Upgrade" skipped due to earlier failure(s)'))
        assertTrue(b.log.contains('ERROR: rollci verify:before: the system under test failed a check (exit 1)'))
        assertEquals(['Declarative: Post Actions'], b.callsOf('rollciCleanup')*.stage)
        assertEverythingDestroyed()
    }

    @Test
    void anInjectedReleaseArrivesLiterallyAndRunsNothing() {
        String payload = '1; touch PWNED $(touch PWNED2)'
        Build b = demo(demoJenkinsfile(), [:], [FROM_RELEASE: payload])
        assertEquals([], StepsTest.pwned(tmp))
        Map state = json('.rollci/state.json')
        assertEquals(payload, state.from_release)
        assertEquals('B', state.to_release)
        b.callsOf('sh').each { assertFalse(it.text, it.text.contains('PWNED')) }
        assertEquals('SUCCESS', b.result)
        assertEverythingDestroyed()
    }

    @Test
    void anAbortDuringTheUpgradeStopsRollciAndPostStillCleansUp() {
        Build b = demo(demoJenkinsfile(), [:], [:]) { Build aborting ->
            aborting.abortWhen { String out -> out.contains('[upgrade/node2#1]') }
        }
        assertEquals('ABORTED', b.result)
        STAGES.take(4).each { assertEquals(it, 'SUCCESS', b.stageResults[it]) }
        assertEquals('ABORTED', b.stageResults['Upgrade'])
        STAGES.drop(5).each { assertEquals(it, 'SKIPPED', b.stageResults[it]) }
        assertEquals(['Upgrade'], b.callsOf('rollciUpgrade')*.stage)
        assertEquals(['Post-Deployment Validation'], b.callsOf('rollciVerify')*.stage)
        assertEquals([], b.callsOf('rollciReport'))
        assertEquals(['Declarative: Post Actions'], b.callsOf('rollciCleanup')*.stage)
        Map state = json('.rollci/state.json')
        List<Map> steps = state.steps
        int upgrade = steps.findIndexOf { it.step == 'upgrade' }
        assertTrue(steps*.step.toString(), upgrade >= 0)
        assertEquals(['aborted', 5], [steps[upgrade].outcome, steps[upgrade].exit_code])
        assertEquals([node1: 'passed', node2: 'aborted'], steps[upgrade].attempts.collectEntries { [it.action, it.outcome] })
        // Nothing ran between the aborted upgrade and post's cleanup.
        assertEquals([[step: 'cleanup', outcome: 'passed']], steps.drop(upgrade + 1).collect { [step: it.step, outcome: it.outcome] })
        List<Map> processes = state.resources.findAll { it.kind == 'process' }
        assertTrue(state.resources.toString(), processes.size() > 0)
        processes.each { assertFalse("${it.name} (pid ${it.data.pid}) still runs", runs(it.data as Map)) }
        assertEverythingDestroyed()
    }

    /**
     * Runs `jenkinsfile` in a workspace holding the demo lab file with its own address block;
     * `configure` gets the build before it runs (an abort trigger, say).
     */
    Build demo(String jenkinsfile, Map<String, String> env = [:], Map params = [:], Closure configure = null) {
        File bin = new File(System.getProperty('rollci.bin'))
        Map<String, String> agent = [PATH: "${ROOT}/.venv/bin:${SYSTEM_PATH}".toString()]
        if (bin.name == 'rollci') {
            agent.PATH = "${bin.parent}:${agent.PATH}".toString()   // the PATH branch of rollciSetup
        } else {
            agent.ROLLCI_BIN = bin.path
        }
        Build b = newBuild(agent + env)
        b.params.putAll(params)
        File lab = new File(b.workspace, 'examples/demo/rollci.toml')
        lab.parentFile.mkdirs()
        lab.text = labText()
        configure?.call(b)
        b.run(jenkinsfile)
    }

    /** examples/demo/rollci.toml runnable from elsewhere (like tests/it/lab.rs): absolute paths, own block. */
    static String labText() {
        File demo = new File(ROOT, 'examples/demo')
        String smoke = new File(demo, 'smoke').path
        String base = "127.${20 + RANDOM.nextInt(200)}.${RANDOM.nextInt(250)}.2"
        new File(demo, 'rollci.toml').text.readLines().collect { String line ->
            line.startsWith('base_address = ') ? "base_address = \"${base}\"" : line
        }.join('\n')
            .replace('playbook = "playbooks/', "playbook = \"${demo}/playbooks/")
            .replace('"-s", "smoke", "-t", "smoke"', "\"-s\", \"${smoke}\", \"-t\", \"${smoke}\"")
    }

    Map json(String rel) {
        new JsonSlurper().parse(new File(build.workspace, rel)) as Map
    }

    /** Whether the journaled process (pid and start time, as rollci records it) still runs: a recycled pid does not count. */
    static boolean runs(Map process) {
        File stat = new File("/proc/${process.pid}/stat")
        if (!stat.exists()) { return false }
        String text
        try { text = stat.text } catch (IOException ignored) { return false }
        List<String> fields = text.substring(text.lastIndexOf(')') + 2).split(' ') as List
        fields[0] != 'Z' && fields[19] == String.valueOf(process.start_time)
    }

    /** The journal has every resource destroyed; no process outlived the build or names the lab. */
    void assertEverythingDestroyed() {
        Map state = json('.rollci/state.json')
        assertTrue(state.resources.size() > 0)
        state.resources.each { assertEquals("${it.kind} ${it.name}", 'destroyed', it.status) }
        assertEquals([], build.leftovers)
        assertEquals([], Procs.withCmdline(build.workspace.path))
        assertFalse(new File(build.workspace, '.rollci/lab').exists())
    }
}
