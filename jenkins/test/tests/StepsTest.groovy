import static org.junit.Assert.assertEquals
import static org.junit.Assert.assertFalse
import static org.junit.Assert.assertNotNull
import static org.junit.Assert.assertTrue

import java.nio.file.Files
import org.junit.Test
import rollci.harness.Build

/** The steps of `vars/` on the fake rollci: arguments, exit codes, stashes, credentials, setup. */
class StepsTest extends PipelineTestBase {
    static final List<String> CLOUD = ['cloudCredentialsId', 'cloudsYamlCredentialsId']
    /** The credentials each rollci step takes: the generated Jenkinsfiles pass exactly these. */
    static final Map<String, List<String>> STEP_CREDENTIALS = [
        rollciProvision: CLOUD, rollciDeploy: CLOUD, rollciVerify: CLOUD, rollciUpgrade: CLOUD,
        rollciReport: ['esCredentialsId'], rollciCleanup: CLOUD, rollciStrays: CLOUD,
    ]
    /**
     * Credential argument → its id in newBuild's store, the withCredentials binding it makes
     * (the variables rollci reads) and what the fake journals of it (the user; the file's
     * size, owner-only mode and place outside the workspace).
     */
    static final Map<String, Map> CREDENTIAL_KINDS = [
        cloudCredentialsId: [id: 'cloud', journal: 'user=rollci-bot',
            binding: [kind: 'usernamePassword', usernameVariable: 'OS_USERNAME', passwordVariable: 'OS_PASSWORD']],
        cloudsYamlCredentialsId: [id: 'clouds', journal: "clouds=${CLOUDS_YAML.bytes.length}:400:outside",
            binding: [kind: 'file', variable: 'OS_CLIENT_CONFIG_FILE']],
        esCredentialsId: [id: 'es', journal: 'user=elastic',
            binding: [kind: 'usernamePassword', usernameVariable: 'ROLLCI_ES_USER', passwordVariable: 'ROLLCI_ES_PASSWORD']],
    ]
    static final String CHECK_THEN_NEXT = '''
        pipeline {
            agent any
            stages {
                stage('Check') { steps { rollciVerify(phase: 'after', checkFailure: CHECK_FAILURE) } }
                stage('Next') { steps { echo 'next stage ran' } }
            }
        }
    '''

    @Test
    void exitCodesBecomeBuildResultsAndEvidenceIsAlwaysPublished() {
        Map expected = [
            '0 UNSTABLE': ['SUCCESS', 'SUCCESS', null],
            '1 UNSTABLE': ['UNSTABLE', 'SUCCESS', 'rollci verify:after: the system under test failed a check (exit 1)'],
            '1 FAILURE': ['FAILURE', 'SKIPPED', 'rollci verify:after: the system under test failed a check (exit 1)'],
            '2 UNSTABLE': ['FAILURE', 'SKIPPED', 'rollci verify:after: usage or configuration error, exit 2'],
            '3 UNSTABLE': ['FAILURE', 'SKIPPED', 'rollci verify:after: infrastructure error, exit 3'],
            '4 FAILURE': ['FAILURE', 'SKIPPED', 'rollci verify:after: the workspace is locked by another rollci (exit 4)'],
        ]
        expected.each { String key, List want ->
            String[] parts = key.split(' ')
            fakeBuild([FAKE_ROLLCI_EXIT_verify: parts[0]]).run(CHECK_THEN_NEXT.replace('CHECK_FAILURE', "'${parts[1]}'"))
            assertEquals(key, want[0], build.result)
            assertEquals(key, want[1], build.stageResults.Next)
            if (want[2]) { assertTrue("${key}: ${build.log}", build.log.contains(want[2])) }
            List<String> steps = build.calls*.step
            int sh = steps.indexOf('sh')
            assertEquals(key, ['junit', 'archiveArtifacts', 'stash'], steps[sh + 1..sh + 3])
            assertTrue(key, build.archived.contains('.rollci/logs/verify.log'))
            assertEquals(key, parts[0] == '1' ? 1 : 0, build.junit.failed)
            assertTrue(key, fakeJournal()[0].startsWith('verify phase=after'))
            tmp.deleteDir()
            tmp.mkdirs()
        }
    }

    @Test
    void badArgumentsFailBeforeAnythingRuns() {
        Map cases = [
            'rollciVerify()': "rollciVerify: `phase` must be 'before' or 'after', got 'null'",
            "rollciVerify(phase: 'during')": "rollciVerify: `phase` must be 'before' or 'after', got 'during'",
            "rollciUpgrade(checkFailure: 'MAYBE')": "rollciUpgrade: `checkFailure` must be 'UNSTABLE' or 'FAILURE', got 'MAYBE'",
            "rollciDeploy(fromRelease: 'B')": 'rollciDeploy: unknown argument(s) [fromRelease]',
            "rollciProvision(esCredentialsId: 'es')":
                'rollciProvision: does not take [esCredentialsId] (its credentials: [cloudCredentialsId, cloudsYamlCredentialsId])',
            "rollciReport(cloudCredentialsId: 'cloud', cloudsYamlCredentialsId: 'clouds')":
                'rollciReport: does not take [cloudCredentialsId, cloudsYamlCredentialsId] (its credentials: [esCredentialsId])',
            "rollciStep(step: 'rollciNew', command: 'new', script: 'true')":
                'rollciNew: its rollciStep spec declares no `credentials:` (the kinds it takes, [] for none)',
            "rollciStep(step: 'rollciNew', command: 'new', script: 'true', credentials: ['ssh'])":
                'rollciNew: unknown credential kind(s) [ssh] in its rollciStep spec; known: [cloud, clouds, es]',
            "rollciCleanup(workspace: '/var/tmp/x')": 'rollciCleanup: `workspace` must be a path inside the job',
            "rollciSetup(binary: 'x')": 'rollciSetup: unknown argument(s) [binary]',
            'rollciPipeline()': 'rollciPipeline: `config` (the lab file, relative to the workspace) is required',
            "rollciStrays(delete: 'yes')": "rollciStrays: `delete` must be true or false, got 'yes'",
            "rollciStrays(regions: ['IAD'])": 'rollciStrays: unknown argument(s) [regions]',
            "rollciStrays(esCredentialsId: 'es')":
                'rollciStrays: does not take [esCredentialsId] (its credentials: [cloudCredentialsId, cloudsYamlCredentialsId])',
        ]
        cases.each { String call, String message ->
            fakeBuild().run(call)
            assertEquals(call, 'FAILURE', build.result)
            assertTrue("${call}: ${build.log}", build.log.contains("ERROR: ${message}"))
            assertEquals(call, [], build.callsOf('sh') + build.callsOf('unstash'))
        }
    }

    @Test
    void judgeFollowsTheReadmesExitCodeTable() {
        Map<Integer, Map> table = readmeExitCodes()
        table.each { int code, Map row ->
            // The meaning's name: the row's text before its elaboration, "(…)" or "; …".
            String name = row.meaning.split(/ \(|;/)[0].trim()
            ['UNSTABLE', 'FAILURE'].each { String checkFailure ->
                String what = "exit ${code} (${row.meaning}), checkFailure ${checkFailure}"
                String want = expectedResult(row.jenkins, checkFailure)
                judge(code, checkFailure)
                assertEquals("${what}: ${build.log}", want, build.result)
                List<Map> verdicts = build.callsOf('error') + build.callsOf('unstable')
                if (want == 'SUCCESS') {
                    assertEquals(what, [], verdicts)
                    return
                }
                assertEquals(what, [want == 'UNSTABLE' ? 'unstable' : 'error'], verdicts*.step)
                String message = verdicts[0].args[0]
                assertTrue("${what}: the message does not name `${name}`: ${message}",
                    message.startsWith('rollci x: ') && message.contains(name))
                assertTrue("${what}: ${message}", (message =~ /\bexit ${code}\b/).find())
            }
        }
        ((0..9) - table.keySet()).each { int code ->
            judge(code, 'UNSTABLE')
            assertEquals("exit ${code} is not in the README", 'FAILURE', build.result)
            assertEquals("exit ${code}", ['error'], (build.callsOf('error') + build.callsOf('unstable'))*.step)
            assertEquals("exit ${code}", "rollci x: unexpected exit code ${code}", build.callsOf('error')[0].args[0])
        }
    }

    @Test
    void eachStepBindsTheCredentialsItDeclaresAndRefusesTheOthers() {
        STEP_CREDENTIALS.each { String step, List<String> takes ->
            takes.each { String argument ->
                Map kind = CREDENTIAL_KINDS[argument]
                fakeBuild().run(invocation(step, "${argument}: '${kind.id}'"))
                assertEquals("${step}: ${build.log}", 'SUCCESS', build.result)
                assertEquals(step, [[binding(argument)]], build.callsOf('withCredentials')*.args*.getAt(0))
                String journal = fakeJournal()[0]
                assertTrue("${step}: ${journal}", journal.contains(" ${kind.journal}"))
            }
            fakeBuild().run(invocation(step, takes.collect { "${it}: '${CREDENTIAL_KINDS[it].id}'" }.join(', ')))
            assertEquals(step, [takes.collect { binding(it) }], build.callsOf('withCredentials')*.args*.getAt(0))
            fakeBuild().run(invocation(step))
            assertEquals(step, [[]], build.callsOf('withCredentials')*.args*.getAt(0))

            (CREDENTIAL_KINDS.keySet() - takes).each { String other ->
                fakeBuild().run(invocation(step, "${other}: '${CREDENTIAL_KINDS[other].id}'"))
                assertEquals(step, 'FAILURE', build.result)
                String message = "ERROR: ${step}: does not take [${other}] (its credentials: ${takes})"
                assertTrue("${step}: ${build.log}", build.log.contains(message))
                assertEquals(step, [], build.callsOf('sh') + build.callsOf('unstash') + build.callsOf('withCredentials'))
            }
        }
    }

    @Test
    void aCloudsYamlReachesRollciAsAnOwnerOnlyFileOutsideTheWorkspaceForTheStepOnly() {
        fakeBuild().run('''
            pipeline {
                agent any
                stages {
                    stage('Clouds') { steps { rollciProvision(cloudsYamlCredentialsId: 'clouds') } }
                    stage('After') { steps { sh 'echo "after: ${OS_CLIENT_CONFIG_FILE:-unbound}"' } }
                    stage('Wrong') { steps { rollciDeploy(cloudsYamlCredentialsId: 'cloud') } }
                }
            }
        ''')
        String all = build.transcript()
        assertTrue(all, all.contains('fake rollci provision: cloud password none, es password none, clouds.yaml ****'))
        assertFalse(all, all.contains('@tmp/secretFiles/'))
        assertTrue(all.contains('after: unbound'))
        assertEquals([], new File("${build.workspace}@tmp/secretFiles").list() as List)
        List<String> journal = fakeJournal()
        assertEquals(1, journal.size())
        assertTrue(journal[0], journal[0].endsWith(" ${CREDENTIAL_KINDS.cloudsYamlCredentialsId.journal}"))
        String secret = CLOUDS_SECRET   // groovy 2.4 cannot reach the constant from the closure
        build.root.eachFileRecurse { File f ->
            assertFalse("${f} holds the clouds.yaml's secret", f.file && f.text.contains(secret))
        }
        assertTrue(all.contains("Credentials 'cloud' is of the wrong type"))
        assertEquals('FAILURE', build.result)
        assertEquals('FAILURE', build.stageResults.Wrong)
    }

    @Test
    void rollciStraysPassesItsArgumentsAsVariablesOnly() {
        String payload = '1; touch PWNED $(touch PWNED2) `touch PWNED3` "${IFS}"'
        String strays = "rollciStrays(cloud: 'rackspace', region: 'IAD', delete: true, interval: '5s', " +
            "serviceName: 'cloudServersOpenStack', lab: '${payload}')"
        fakeBuild().run("rollciSetup()\n${strays}\nrollciStrays(cloud: 'rackspace')")
        assertEquals(build.log.toString(), 'SUCCESS', build.result)
        List<String> journal = fakeJournal()
        assertEquals(2, journal.size())
        assertTrue(journal[0], journal[0].endsWith(
            " cloud=rackspace region=IAD delete=true interval=5s service=cloudServersOpenStack lab=${payload}"))
        assertTrue(journal[1], journal[1].endsWith(
            ' cloud=rackspace region=<unset> delete=false interval=<unset> service=<unset> lab=<unset>'))
        assertEquals([], pwned(tmp))
        build.callsOf('sh').each { assertFalse(it.text, it.text.contains('PWNED')) }
        assertTrue(build.log.contains("+ exec ${build.workspace}/.rollci-bin/rollci strays"))
    }

    /** The withCredentials binding a credential argument makes, with newBuild's id. */
    static Map binding(String argument) {
        Map kind = CREDENTIAL_KINDS[argument]
        kind.binding + [credentialsId: kind.id]
    }

    @Test
    void theJournalTravelsBetweenAgentsButNeverTheLab() {
        fakeBuild().run('''
            node('one') { rollciProvision() }
            node('two') { rollciDeploy(); rollciVerify(phase: 'before') }
        ''')
        assertEquals('SUCCESS', build.result)
        File two = new File(build.root, 'agents/two-2/workspace')
        List<String> journal = fakeJournal(two)
        assertEquals(['provision', 'deploy', 'verify'], journal.collect { it.split(' ')[0] })
        File stash = new File(build.root, 'stashes/rollci-state/.rollci')
        assertTrue(new File(stash, 'state.json').file)
        assertTrue(new File(stash, 'reports/junit/deploy-all.xml').file)
        assertFalse('the lab is stashed', new File(stash, 'lab').exists())
        assertFalse('logs are archived, not stashed', new File(stash, 'logs').exists())
        assertTrue(build.log.contains('rollci: no saved state yet'))
    }

    @Test
    void setupUsesRollciBinThenPathThenTheStashThenABuild() {
        File bin = new File(tmp, 'bin')
        bin.mkdirs()
        Files.copy(FAKE.toPath(), new File(bin, 'rollci').toPath())
        File cargoDir = new File(tmp, 'cargo-bin')
        cargoDir.mkdirs()
        new File(cargoDir, 'cargo').text = "#!/bin/sh\nset -e\ntest \"\$*\" = 'build --locked --release'\n" +
            "mkdir -p target/release && cp '${FAKE.path}' target/release/rollci\n"
        new File(cargoDir, 'cargo').setExecutable(true)
        fakeBuild()
        build.ephemeralAgents = true
        build.labelEnv = [
            path: [ROLLCI_BIN: null, PATH: "${bin}:${SYSTEM_PATH}".toString()],
            bare: [ROLLCI_BIN: null],
            builder: [ROLLCI_BIN: null, PATH: "${cargoDir}:${SYSTEM_PATH}".toString()],
        ]
        build.run('''
            node('given') { rollciSetup(); sh 'echo "given: $ROLLCI_BIN"' }
            node('path') { rollciSetup(); sh 'echo "path: $ROLLCI_BIN"' }
            node('bare') { rollciSetup(); rollciProvision() }
            node('bare') { rollciDeploy() }
        ''')
        assertEquals(build.log.toString(), 'SUCCESS', build.result)
        String log = build.log
        assertTrue(log.contains("given: ${build.root}/agents/given-1/workspace/.rollci-bin/rollci"))
        assertTrue(log.contains("path: ${build.root}/agents/path-2/workspace/.rollci-bin/rollci"))
        assertEquals(3, log.count('rollci 0.0.0 (fake)'))
        assertTrue(log.contains("+ exec ${build.root}/agents/bare-4/workspace/.rollci-bin/rollci deploy"))

        // Nothing anywhere: built from the sources when there are some, else a hint.
        File builder = new File(tmp, 'fresh')
        fakeBuild()
        build.ephemeralAgents = true
        build.labelEnv = [builder: [ROLLCI_BIN: null, PATH: "${cargoDir}:${SYSTEM_PATH}".toString()]]
        build.run('''
            node('builder') { writeFile file: 'Cargo.toml', text: '[package]'; rollciSetup() }
            node('builder') { rollciSetup(source: 'elsewhere') }
        ''')
        assertEquals(build.log.toString(), 'SUCCESS', build.result)
        assertTrue(build.log.contains('+ cargo build --locked --release'))
        assertEquals(1, build.log.count('+ cargo build'))   // the second agent unstashed it
        fakeBuild()
        build.labelEnv = [builder: [ROLLCI_BIN: null]]
        build.run("node('builder') { rollciSetup() }")
        assertEquals('FAILURE', build.result)
        assertTrue(build.log.contains('holds no rollci sources to build (hint: install rollci on the agent, set ROLLCI_BIN'))
        builder.deleteDir()
    }

    @Test
    void credentialsReachRollciAndNeverTheLog() {
        fakeBuild().run('''
            pipeline {
                agent any
                stages {
                    stage('Cloud') { steps { rollciProvision(cloudCredentialsId: 'cloud') } }
                    stage('ES') { steps { rollciReport(esCredentialsId: 'es') } }
                    stage('Missing') { steps { rollciCleanup(cloudCredentialsId: 'nope') } }
                }
            }
        ''')
        String all = build.transcript()
        assertFalse(all.contains(SECRET))
        assertFalse(all.contains(ES_SECRET))
        assertTrue(all.contains('fake rollci provision: cloud password ****, es password none'))
        assertTrue(all.contains('fake rollci report: cloud password none, es password ****'))
        assertTrue(all.contains("Could not find credentials entry with ID 'nope'"))
        List<String> journal = fakeJournal()
        assertTrue(journal[0].endsWith('user=rollci-bot'))
        assertTrue(journal[1].endsWith('user=elastic'))
        assertEquals('FAILURE', build.result)
    }

    @Test
    void anInjectedReleaseArrivesLiterally() {
        String payload = '1; touch PWNED $(touch PWNED2) `touch PWNED3` "${IFS}"\'quoted\''
        fakeBuild()
        build.params.FROM_RELEASE = payload
        build.run(demoJenkinsfile())
        assertEquals(build.log.toString(), 'SUCCESS', build.result)
        assertEquals([], pwned(tmp))
        assertTrue(fakeJournal().every { it.contains("from=${payload} to=B") })
        build.callsOf('sh').each { assertFalse(it.text.contains('PWNED')) }
    }

    @Test
    void everyShellLineOfTheLibraryIsASingleQuotedLiteral() {
        new File(ROOT, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.each { File f ->
            f.text.eachLine { String line, int n ->
                boolean gstring = line =~ /\bsh\s*\(?\s*"/ || line =~ /\bscript:\s*"/ || line =~ /\bsh\s*\(?\s*"""/
                assertFalse("${f.name}:${n + 1}: sh with a double-quoted (interpolated) string: ${line}", gstring)
            }
        }
    }

    @Test
    void rollciPipelineRunsEveryStageInOrder() {
        fakeBuild().run('''
            @Library('rollci') _
            rollciPipeline(config: 'labs/lab.toml', cloudCredentialsId: 'cloud', toRelease: 'C')
        ''')
        assertEquals(build.log.toString(), 'SUCCESS', build.result)
        assertEquals(['Setup', 'Pre-Deployment', 'Deployment', 'Post-Deployment Validation', 'Upgrade',
            'Post-Upgrade Validation', 'Reporting', 'Clean Up'], build.stageResults.keySet() as List)
        List<String> journal = fakeJournal()
        assertEquals(['provision', 'deploy', 'verify', 'upgrade', 'verify', 'report', 'cleanup', 'cleanup'],
            journal.collect { it.split(' ')[0] })
        assertTrue(journal[2], journal[2].contains('phase=before config=labs/lab.toml from=<unset> to=C user=rollci-bot'))
        assertFalse(build.transcript().contains(SECRET))
    }

    /** A build that only calls `rollciStep.judge('rollci x', code, checkFailure)`. */
    private Build judge(int code, String checkFailure) {
        newBuild().run("rollciStep.judge('rollci x', ${code}, '${checkFailure}')")
    }

    /** The call of a rollci step with `more` arguments (rollciVerify needs its phase). */
    static String invocation(String step, String more = '') {
        List<String> args = (step == 'rollciVerify' ? ["phase: 'before'"] : []) + (more ? [more] : [])
        "${step}(${args.join(', ')})"
    }

    /** The build result the README's "Jenkins" column gives for a `checkFailure`. */
    static String expectedResult(String jenkins, String checkFailure) {
        switch (jenkins.split(/\W/)[0]) {
            case 'SUCCESS': return 'SUCCESS'
            case 'UNSTABLE': return checkFailure   // "UNSTABLE or FAILURE, as the lab says"
            case 'FAILURE': return 'FAILURE'
        }
        throw new AssertionError("README.md exit codes: no build result in the Jenkins column `${jenkins}`")
    }

    /** The rows of README.md's "## Exit codes" table: code → [meaning:, jenkins:]. */
    static Map<Integer, Map> readmeExitCodes() {
        String section = new File(ROOT, 'README.md').text.split(/(?m)^## /).find { it.startsWith('Exit codes\n') }
        assertNotNull('README.md has no "## Exit codes" section', section)
        assertTrue(section, section.contains('| code | meaning | Jenkins |'))
        Map<Integer, Map> rows = [:]
        section.eachLine { String line ->
            if (!(line =~ /^\|\s*\d/)) { return }
            def m = line =~ /^\|\s*(\d+)\s*\|([^|]+)\|([^|]+)\|\s*$/
            assertTrue("README.md exit codes: a row of three cells expected: ${line}", m.matches())
            rows[m.group(1) as int] = [meaning: m.group(2).trim(), jenkins: m.group(3).trim()]
        }
        assertTrue("README.md exit codes: 0 and 1 at least, got ${rows.keySet()}", rows.keySet().containsAll([0, 1]))
        rows
    }

    /** Files named PWNED* anywhere under `dir` or in the current directory. */
    static List<String> pwned(File dir) {
        List<String> found = []
        dir.eachFileRecurse { if (it.name.startsWith('PWNED')) { found << it.path } }
        new File('.').listFiles().findAll { it.name.startsWith('PWNED') }.each { found << it.path }
        found
    }
}
