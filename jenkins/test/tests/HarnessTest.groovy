import static org.junit.Assert.assertEquals
import static org.junit.Assert.assertFalse
import static org.junit.Assert.assertTrue

import org.junit.Test
import rollci.harness.Procs

/** The harness itself behaves like Jenkins where the steps rely on it. */
class HarnessTest extends PipelineTestBase {
    @Test
    void failureSkipsLaterStagesAndPostRunsInJenkinsOrder() {
        newBuild().run('''
            pipeline {
                agent any
                stages {
                    stage('One') { steps { echo 'one ran' } }
                    stage('Two') { steps { error 'boom' } }
                    stage('Three') { steps { echo 'three ran' } }
                }
                post {
                    cleanup { echo 'post: cleanup' }
                    success { echo 'post: success' }
                    failure { echo 'post: failure' }
                    always { echo 'post: always' }
                }
            }
        ''')
        String log = build.log
        assertEquals('FAILURE', build.result)
        assertEquals([One: 'SUCCESS', Two: 'FAILURE', Three: 'SKIPPED'], build.stageResults)
        assertTrue(log.contains('Stage "Three" skipped due to earlier failure(s)'))
        assertFalse(log.contains('three ran'))
        assertFalse(log.contains('post: success'))
        List<Integer> order = ['post: always', 'post: failure', 'post: cleanup'].collect { log.indexOf(it) }
        assertTrue("post order ${order}", order[0] > 0 && order[0] < order[1] && order[1] < order[2])
    }

    @Test
    void unstableAndFailedTestsContinue() {
        newBuild().run('''
            pipeline {
                agent any
                stages {
                    stage('Tests') {
                        steps {
                            writeFile file: 'r/t.xml', text: '<testsuite name="s"><testcase name="a"/><testcase name="b"><failure/></testcase><testcase name="c"><skipped/></testcase></testsuite>'
                            junit testResults: 'r/*.xml'
                        }
                    }
                    stage('Warn') { steps { unstable 'warned' } }
                    stage('After') { steps { echo 'after ran' } }
                }
                post { unstable { echo 'post: unstable' } }
            }
        ''')
        assertEquals('UNSTABLE', build.result)
        assertEquals([Tests: 'UNSTABLE', Warn: 'UNSTABLE', After: 'SUCCESS'], build.stageResults)
        assertEquals(3, build.junit.total)
        assertEquals(1, build.junit.failed)
        assertEquals(1, build.junit.skipped)
        assertTrue(build.log.contains('after ran'))
        assertTrue(build.log.contains('post: unstable'))
    }

    @Test
    void junitCanLeaveTheResultToTheCaller() {
        newBuild().run('''
            pipeline {
                agent any
                stages {
                    stage('Tests') {
                        steps {
                            writeFile file: 'r/t.xml', text: '<testsuite name="s"><testcase name="b"><failure/></testcase></testsuite>'
                            junit testResults: 'r/*.xml', skipMarkingBuildUnstable: true
                        }
                    }
                }
            }
        ''')
        assertEquals('SUCCESS', build.result)
        assertEquals(1, build.junit.failed)
    }

    @Test
    void shRunsForRealWithXtraceEnvAndDirectories() {
        newBuild([FROM_AGENT: 'agent']).run('''
            pipeline {
                agent any
                environment { FROM_BLOCK = 'block'; EMPTY = '' }
                stages {
                    stage('Sh') {
                        steps {
                            script {
                                String out = sh(returnStdout: true, script: 'printf %s "$FROM_AGENT-$FROM_BLOCK-${EMPTY-unset}"')
                                writeFile file: 'out.txt', text: out
                                int status = sh(returnStatus: true, script: 'exit 3')
                                writeFile file: 'status.txt', text: "${status}"
                                withEnv(['PATH+EXTRA=/opt/extra', 'ONE=1']) {
                                    sh 'echo "path=$PATH one=$ONE"'
                                }
                                dir('sub/dir') {
                                    sh 'pwd > here.txt'
                                    env.LATER = 'set-by-env'
                                }
                                if (!fileExists('sub/dir/here.txt')) { error 'dir did not work' }
                                sh 'echo "later=$LATER"'
                                sh 'false; echo not reached'
                            }
                        }
                    }
                }
            }
        ''')
        File ws = build.workspace
        assertEquals('agent-block-unset', new File(ws, 'out.txt').text)
        assertEquals('3', new File(ws, 'status.txt').text)
        assertEquals(new File(ws, 'sub/dir').path, new File(ws, 'sub/dir/here.txt').text.trim())
        String log = build.log
        assertTrue(log, log.contains("path=/opt/extra:${SYSTEM_PATH} one=1"))
        assertTrue(log.contains('later=set-by-env'))
        assertTrue('sh -x trace', log.contains('+ false'))
        assertFalse('sh -e', log.contains('not reached'))
        assertTrue(log.contains('ERROR: script returned exit code 1'))
        assertEquals('FAILURE', build.result)
    }

    @Test
    void anUnknownStepFailsLikeJenkins() {
        newBuild().run('''
            pipeline {
                agent any
                stages { stage('X') { steps { frobnicate(hard: true) } } }
            }
        ''')
        assertEquals('FAILURE', build.result)
        assertTrue(build.log.contains("java.lang.NoSuchMethodError: No such DSL method 'frobnicate' found among steps"))
    }

    @Test
    void timeoutKillsTheWholeProcessTree() {
        String marker = "rollci-harness-sleep-${UUID.randomUUID()}"
        long t0 = System.currentTimeMillis()
        newBuild([MARKER: marker]).run('''
            pipeline {
                agent any
                stages {
                    stage('Slow') {
                        steps {
                            timeout(time: 2, unit: 'SECONDS') {
                                sh 'sh -c "sleep 300; : $MARKER" & sh -c "sleep 301; : $MARKER"; wait'
                            }
                        }
                    }
                    stage('Next') { steps { echo 'next' } }
                }
                post { always { echo 'post ran' } }
            }
        ''')
        long took = System.currentTimeMillis() - t0
        assertEquals('ABORTED', build.result)
        assertTrue("took ${took} ms", took < 15000)
        assertTrue(build.log.contains('Timeout has been exceeded'))
        assertTrue(build.log.contains('post ran'))
        assertEquals([], Procs.withCmdline(marker))
        assertEquals([], build.leftovers)
    }

    @Test
    void anAbortTermsTheRunningShOnceAndPostRunsUndisturbed() {
        newBuild().abortWhen { String out -> out.contains('working') }.run('''
            pipeline {
                agent any
                stages {
                    stage('One') { steps { echo 'one ran' } }
                    stage('Two') {
                        steps {
                            script {
                                try {
                                    sh returnStatus: true, script: 'trap "echo got TERM; exit 7" TERM; echo working; while :; do sleep 0.1; done'
                                } finally {
                                    sh 'echo finally working'
                                }
                            }
                        }
                    }
                    stage('Three') { steps { echo 'three ran' } }
                }
                post { aborted { sh 'echo post working' } }
            }
        ''')
        String log = build.log
        assertEquals('ABORTED', build.result)
        assertEquals([One: 'SUCCESS', Two: 'ABORTED', Three: 'SKIPPED'], build.stageResults)
        // The script's TERM trap ran: a SIGTERM, not a SIGKILL; returnStatus does not hide the abort.
        assertTrue(log, log.contains('got TERM'))
        assertEquals(1, log.count('Sending interrupt signal to process'))
        assertTrue(log.contains('finally working'))
        assertTrue(log.contains('post working'))
        assertFalse(log.contains('three ran'))
        assertEquals([], build.leftovers)
    }

    @Test
    void anAbortedShIgnoringTermIsKilledAfterTheGrace() {
        String marker = "rollci-harness-sleep-${UUID.randomUUID()}"
        long t0 = System.currentTimeMillis()
        newBuild([MARKER: marker]).abortWhen { String out -> out.contains('ignoring') }
        build.abortGraceMs = 1000
        build.run('''
            node {
                sh 'trap "" TERM; echo ignoring; sh -c "sleep 300; : $MARKER"'
            }
        ''')
        long took = System.currentTimeMillis() - t0
        assertEquals('ABORTED', build.result)
        assertTrue("took ${took} ms", took < 15000)
        assertTrue(build.log.toString(), build.log.contains('still runs 1000 ms after the interrupt'))
        assertEquals([], Procs.withCmdline(marker))
        assertEquals([], build.leftovers)
    }

    @Test
    void aDaemonLeftRunningIsFoundByItsCookie() {
        newBuild().run('''
            node {
                sh 'setsid sleep 300 >/dev/null 2>&1 & pid=$!; i=0; until grep -q sleep /proc/$pid/cmdline 2>/dev/null || [ $i -ge 100 ]; do i=$((i+1)); sleep 0.05; done'
            }
        ''')
        // Wait above until the background child has exec'd, or the reaper may meet it while
        // it is still a copy of the step's `sh`.
        assertTrue(build.leftovers.toString(), build.leftovers.any { it.cmdline.contains('sleep 300') })
        assertEquals([], Procs.withEnv("JENKINS_NODE_COOKIE=${build.cookie}"))
    }

    @Test
    void credentialsAreBoundAndMasked() {
        newBuild().run('''
            pipeline {
                agent any
                stages {
                    stage('Creds') {
                        steps {
                            withCredentials([usernamePassword(credentialsId: 'cloud', usernameVariable: 'U', passwordVariable: 'P'),
                                             string(credentialsId: 'token', variable: 'T'),
                                             file(credentialsId: 'clouds', variable: 'F')]) {
                                sh 'echo "user $U password $P token $T file $F"; test "$P" = s3cr3t-Pa55'
                                sh 'case "$F" in "$WORKSPACE"/*) exit 1 ;; esac; test "$(stat -c %a "$F")" = 400'
                                sh 'test "$(basename "$F")" = clouds.yaml; grep -q "password: clouds-Pa55" "$F"'
                                echo "groovy sees ${env.P}"
                            }
                            sh 'echo "after: ${P:-unbound} ${F:-unbound}"'
                            withCredentials([usernamePassword(credentialsId: 'nope', usernameVariable: 'U', passwordVariable: 'P')]) {
                                echo 'not reached'
                            }
                        }
                    }
                }
            }
        ''')
        String all = build.transcript()
        assertFalse(all.contains(SECRET))
        assertFalse(all.contains('tok-123456'))
        assertTrue(all.contains('user **** password **** token **** file ****'))
        assertTrue(all.contains('groovy sees ****'))
        assertTrue(all.contains('after: unbound unbound'))
        assertEquals([], new File("${build.workspace}@tmp/secretFiles").list() as List)
        assertTrue(all.contains("Could not find credentials entry with ID 'nope'"))
        assertFalse(all.contains('not reached'))
        newBuild().run("withCredentials([file(credentialsId: 'token', variable: 'F')]) { echo 'not reached' }")
        assertTrue(build.log.contains("Credentials 'token' is of the wrong type"))
        assertFalse(build.log.contains('not reached'))
    }

    @Test
    void stashTravelsBetweenAgentsAndArchiveCopies() {
        newBuild().run('''
            node('one') {
                writeFile file: 'keep/a.txt', text: 'from one'
                writeFile file: 'keep/deep/b.txt', text: 'deep'
                writeFile file: 'skip/c.txt', text: 'no'
                sh 'printf "#!/bin/sh\\necho runs\\n" > keep/tool && chmod +x keep/tool'
                stash name: 'things', includes: 'keep/**', excludes: 'keep/deep/**'
                archiveArtifacts artifacts: 'keep/*.txt, skip/**'
            }
            node('two') {
                unstash 'things'
                if (readFile('keep/a.txt') != 'from one' || fileExists('keep/deep/b.txt') || fileExists('skip/c.txt')) {
                    error 'stash content wrong'
                }
                sh 'keep/tool'
                stash name: 'empty', includes: 'nothing/**', allowEmpty: true
                unstash 'never-stashed'
            }
        ''')
        assertEquals(['keep/a.txt', 'skip/c.txt'], build.archived)
        assertTrue(build.log.contains('runs'))
        assertTrue(build.log.contains('No such saved stash ‘never-stashed’'))
        assertEquals('FAILURE', build.result)
    }

    @Test
    void retryLockAndLibraryResource() {
        File lib = new File(tmp, 'lib')
        new File(lib, 'resources/rollci').mkdirs()
        new File(lib, 'resources/rollci/hello.txt').text = 'resource text'
        new File(lib, 'vars').mkdirs()
        new File(lib, 'vars/greet.groovy').text = 'def call(Map args = [:]) { echo "hello ${args.who}: " + libraryResource(\'rollci/hello.txt\') }'
        newBuild()
        build.libraryRoot = lib
        build.run('''
            int n = 0
            retry(3) {
                n++
                if (n < 3) { error "attempt ${n}" }
            }
            lock('rollci-lab') { greet(who: 'world') }
            echo "attempts ${n}"
            libraryResource 'missing.txt'
        ''')
        assertTrue(build.log.contains('attempts 3'))
        assertTrue(build.log.contains('Retrying'))
        assertTrue(build.log.contains('hello world: resource text'))
        assertTrue(build.log.contains('Lock released on resource [Resource: rollci-lab]'))
        assertEquals(['retry', 'error', 'error', 'lock', 'greet', 'libraryResource', 'echo', 'echo', 'libraryResource'],
            build.calls*.step)
        assertEquals('FAILURE', build.result)
    }
}
