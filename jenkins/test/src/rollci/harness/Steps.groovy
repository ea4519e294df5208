package rollci.harness

import java.nio.file.Files
import java.nio.file.attribute.PosixFilePermissions
import java.util.concurrent.TimeUnit
import java.util.concurrent.locks.ReentrantLock

/**
 * The steps, with Jenkins' arguments and failure messages. `sh` really runs `sh -xe` on a
 * script file with the build's environment, its output going to a file like durable-task's
 * (so a daemon keeping the descriptor open cannot hang the step), tailed into the masked log.
 */
class Steps {
    static final Map<String, ReentrantLock> LOCKS = [:].asSynchronized()

    Build b

    // ------------------------------------------------------------------ processes

    Object sh(String script) { sh([script: script]) }

    Object sh(Map a) {
        if (!a.script) { throw new IllegalArgumentException('sh: missing mandatory parameter `script`') }
        File ctl = b.controlDir()
        File script = new File(ctl, 'script.sh')
        script.text = a.script
        File logFile = new File(ctl, 'jenkins-log.txt')
        File outFile = new File(ctl, 'output.txt')
        ProcessBuilder pb = new ProcessBuilder('sh', '-xe', script.path).directory(b.cwd)
        pb.environment().clear()
        pb.environment().putAll(b.env())
        pb.redirectInput(ProcessBuilder.Redirect.from(new File('/dev/null')))
        if (a.returnStdout) {
            pb.redirectOutput(outFile)
            pb.redirectError(logFile)
        } else {
            pb.redirectErrorStream(true)
            pb.redirectOutput(logFile)
        }
        Map run = [aborted: false]
        int code = waitFor(pb.start(), logFile, run)
        String stdout = a.returnStdout ? outFile.getText('UTF-8') : null
        ctl.deleteDir()
        // Like Jenkins: an aborted step fails whatever its exit code, `returnStatus` or not.
        if (run.aborted) { throw new FlowInterruptedException('Aborted by harness') }
        if (b.expired()) { throw new FlowInterruptedException('Timeout has been exceeded') }
        if (code != 0 && !a.returnStatus) { throw new AbortException("script returned exit code ${code}") }
        a.returnStatus ? code : stdout
    }

    /**
     * Waits, tailing the log. An expired timeout kills the whole process tree. An abort sends
     * SIGTERM to the script's own process only, so a tool the script `exec`s can wind down its
     * children itself; the tree is killed only if it outlives b.abortGraceMs.
     */
    private int waitFor(Process p, File logFile, Map run) {
        long offset = 0
        boolean killed = false
        long forceAt = 0
        StringBuilder output = new StringBuilder()
        while (!p.waitFor(200, TimeUnit.MILLISECONDS)) {
            offset = tail(logFile, offset, false, output)
            if (!killed && b.expired()) {
                b.println("Sending interrupt signal to process ${p.pid()} and its descendants")
                Procs.killTree(p.pid())
                killed = true
            }
            if (!killed && !run.aborted && b.abortDue(output)) {
                b.println('Aborted by harness')
                b.println("Sending interrupt signal to process ${p.pid()}")
                p.destroy()   // SIGTERM on Linux; destroyForcibly would be SIGKILL
                run.aborted = true
                forceAt = System.currentTimeMillis() + b.abortGraceMs
            }
            if (!killed && run.aborted && System.currentTimeMillis() >= forceAt) {
                b.println("Process ${p.pid()} still runs ${b.abortGraceMs} ms after the interrupt: killing it and its descendants")
                // Listed before the kill: a dead parent's children are reparented out of reach.
                Procs.signal('KILL', [p.pid()] + Procs.descendants(p.pid()))
                killed = true
            }
        }
        tail(logFile, offset, true, output)
        p.exitValue()
    }

    /** Logs the new complete lines (all of the rest when `all`), appending them to `seen` too. */
    private long tail(File f, long offset, boolean all, StringBuilder seen) {
        if (!f.exists() || f.length() <= offset) { return offset }
        RandomAccessFile raf = new RandomAccessFile(f, 'r')
        try {
            raf.seek(offset)
            byte[] buf = new byte[(int) (f.length() - offset)]
            raf.readFully(buf)
            String text = new String(buf, 'UTF-8')
            int end = all ? text.length() : text.lastIndexOf('\n') + 1
            if (end <= 0) { return offset }
            String chunk = text.substring(0, end)
            chunk.readLines().each { b.println(it) }
            seen.append(chunk)
            return offset + chunk.getBytes('UTF-8').length
        } finally {
            raf.close()
        }
    }

    void sleep(Object a) {
        long ms = a instanceof Map ? Build.toMillis(a.time as long, (a.unit ?: 'SECONDS') as String) : (a as long) * 1000
        long end = System.currentTimeMillis() + ms
        while (System.currentTimeMillis() < end) {
            if (b.expired()) { throw new FlowInterruptedException('Timeout has been exceeded') }
            Thread.sleep(Math.min(100L, Math.max(1L, end - System.currentTimeMillis())))
        }
    }

    // ------------------------------------------------------------------ flow

    void echo(Object message) { b.println(message) }

    void error(Object message) { throw new AbortException(String.valueOf(message)) }

    void unstable(Object a) {
        String message = a instanceof Map ? a.message : String.valueOf(a)
        b.println("WARNING: ${message}")
        b.worsen('UNSTABLE')
        b.stageWorsen('UNSTABLE')
    }

    Object script(Closure body) { Spec.steps(body) }

    void pipeline(Closure body) { b.runDeclarative(body) }

    Object timeout(Object a, Closure body) {
        Map spec = a instanceof Map ? a : [time: a, unit: 'MINUTES']
        b.withTimeout(spec) { body.call() }
    }

    Object retry(Object a, Closure body) {
        int count = (a instanceof Map ? a.count : a) as int
        for (int attempt = 1; ; attempt++) {
            try {
                return body.call()
            } catch (FlowInterruptedException e) {
                throw e
            } catch (Throwable e) {
                if (attempt >= count) { throw e }
                b.println("ERROR: ${e.message}")
                b.println('Retrying')
            }
        }
    }

    Object lock(Object a, Closure body) {
        String name = a instanceof Map ? (a.resource ?: a.label) : String.valueOf(a)
        ReentrantLock l
        synchronized (LOCKS) { l = LOCKS.get(name) ?: new ReentrantLock(); LOCKS[name] = l }
        b.println("Trying to acquire lock on [Resource: ${name}]")
        l.lock()
        b.println("Lock acquired on [Resource: ${name}]")
        try {
            return body.call()
        } finally {
            l.unlock()
            b.println("Lock released on resource [Resource: ${name}]")
        }
    }

    void catchError(Map a = [:], Closure body) {
        try {
            body.call()
        } catch (FlowInterruptedException e) {
            throw e
        } catch (Throwable e) {
            b.println(a.message ?: "ERROR: ${e.message}")
            b.worsen((a.buildResult ?: 'FAILURE') as String)
            b.stageWorsen((a.stageResult ?: a.buildResult ?: 'FAILURE') as String)
        }
    }

    Object withEnv(List<String> vars, Closure body) {
        Map<String, String> layer = [:]
        vars.each { String v ->
            int eq = v.indexOf('=')
            if (eq < 0) { throw new IllegalArgumentException("withEnv: `${v}` is not NAME=VALUE") }
            layer[v.substring(0, eq)] = v.substring(eq + 1)
        }
        b.envLayers << layer
        try {
            return body.call()
        } finally {
            b.envLayers.remove(b.envLayers.size() - 1)
        }
    }

    // ------------------------------------------------------------------ credentials

    Map usernamePassword(Map a) { [kind: 'usernamePassword'] + a }

    Map string(Map a) { [kind: 'string'] + a }

    Map file(Map a) { [kind: 'file'] + a }

    /**
     * Binds each credential for the body, its values masked. A secret file is written, like
     * Jenkins' FileBinding, to `<current directory>@tmp/secretFiles/<uuid>/<its file name>`
     * (owner-only), so outside the workspace unless under `dir()`, and deleted afterwards; the
     * variable holds that path, which is what gets masked (the file's content is not).
     */
    Object withCredentials(List<Map> bindings, Closure body) {
        Map<String, String> layer = [:]
        List<String> masked = []
        List<File> files = []
        boolean bound = false
        try {
            bindings.each { Map d -> bind(d, b.credential(d.credentialsId as String), layer, masked, files) }
            b.secrets.addAll(masked)
            b.envLayers << layer
            bound = true
            return body.call()
        } finally {
            if (bound) {
                b.envLayers.remove(b.envLayers.size() - 1)
                masked.each { b.secrets.remove(it) }
            }
            files*.deleteDir()
        }
    }

    private void bind(Map d, Map c, Map<String, String> layer, List<String> masked, List<File> files) {
        String wrong = "Credentials '${d.credentialsId}' is of the wrong type"
        switch (d.kind) {
            case 'usernamePassword':
                if (c.password == null) { throw new AbortException(wrong) }
                layer[d.usernameVariable as String] = c.username
                layer[d.passwordVariable as String] = c.password
                masked.addAll([c.username, c.password])
                break
            case 'file':
                if (c.content == null) { throw new AbortException(wrong) }
                File dir = new File(b.cwd.path + '@tmp', "secretFiles/${UUID.randomUUID()}")
                dir.mkdirs()
                files << dir
                Files.setPosixFilePermissions(dir.toPath(), PosixFilePermissions.fromString('rwx------'))
                File f = new File(dir, (c.fileName ?: 'secret') as String)
                f.setText(c.content as String, 'UTF-8')
                Files.setPosixFilePermissions(f.toPath(), PosixFilePermissions.fromString('r--------'))
                layer[d.variable as String] = f.path
                masked << f.path
                break
            default:
                if (c.secret == null) { throw new AbortException(wrong) }
                layer[d.variable as String] = c.secret
                masked << c.secret
        }
    }

    // ------------------------------------------------------------------ files

    private File resolve(Object path) {
        File f = new File(String.valueOf(path))
        f.absolute ? f : new File(b.cwd, f.path)
    }

    Object dir(String path, Closure body) {
        File saved = b.cwd
        b.cwd = resolve(path)
        b.cwd.mkdirs()
        try {
            return body.call()
        } finally {
            b.cwd = saved
        }
    }

    String pwd(Map a = [:]) { a.tmp ? b.agentWorkspace.path + '@tmp' : b.cwd.path }

    boolean isUnix() { true }

    void deleteDir() { b.cwd.deleteDir() }

    boolean fileExists(Object a) { resolve(a instanceof Map ? a.file : a).exists() }

    String readFile(Object a) {
        File f = resolve(a instanceof Map ? a.file : a)
        if (!f.exists()) { throw new FileNotFoundException(f.path + ' (No such file or directory)') }
        f.getText('UTF-8')
    }

    void writeFile(Map a) {
        File f = resolve(a.file)
        f.parentFile.mkdirs()
        f.setText(String.valueOf(a.text), 'UTF-8')
    }

    String libraryResource(Object a) {
        String path = a instanceof Map ? a.resource : String.valueOf(a)
        File f = new File(b.libraryRoot, "resources/${path}")
        if (!f.file) { throw new AbortException('No such library resource ' + path + ' could be found.') }
        f.getText('UTF-8')
    }

    Object node(Object label, Closure body) {
        Map saved = b.enterAgent(label as String)
        b.println("Running on ${b.agentName} in ${b.agentWorkspace}")
        try {
            return body.call()
        } finally {
            b.leaveAgent(saved)
        }
    }

    Object node(Closure body) { node(null, body) }

    // ------------------------------------------------------------------ stash, archive, junit

    void stash(Map a) {
        List<String> files = Ant.match(b.cwd, a.includes as String, a.excludes as String)
        if (!files && !a.allowEmpty) { throw new AbortException("No files included in stash ‘${a.name}’") }
        File store = new File(b.root, "stashes/${a.name}")
        store.deleteDir()
        store.mkdirs()
        Ant.copy(b.cwd, store, files)
        b.println("Stashed ${files.size()} file(s)")
    }

    void stash(String name) { stash([name: name]) }

    void unstash(Object a) {
        String name = a instanceof Map ? a.name : String.valueOf(a)
        File store = new File(b.root, "stashes/${name}")
        if (!store.directory) { throw new AbortException("No such saved stash ‘${name}’") }
        Ant.copy(store, b.cwd, Ant.match(store, '**'))
    }

    void archiveArtifacts(Object a) {
        Map m = a instanceof Map ? a : [artifacts: a]
        List<String> files = Ant.match(b.cwd, m.artifacts as String, m.excludes as String)
        if (!files) {
            if (m.allowEmptyArchive) {
                b.println('No artifacts found that match the file pattern. Archiving nothing.')
                return
            }
            throw new AbortException("No artifacts found that match the file pattern \"${m.artifacts}\". Configuration error?")
        }
        b.println('Archiving artifacts')
        Ant.copy(b.cwd, new File(b.root, 'artifacts'), files)
        synchronized (b.archived) { files.each { if (!b.archived.contains(it)) { b.archived << it } } }
    }

    /** Parses JUnit XML; a suite already recorded (same name and timestamp) is skipped like Jenkins does. */
    Map junit(Object a) {
        Map m = a instanceof Map ? a : [testResults: a]
        List<String> files = Ant.match(b.cwd, m.testResults as String)
        if (!files && !m.allowEmptyResults) { throw new AbortException('No test report files were found. Configuration error?') }
        Map added = [total: 0, failed: 0, skipped: 0]
        files.each { String rel ->
            def root = new XmlSlurper(false, false).parse(new File(b.cwd, rel))
            List suites = root.name() == 'testsuite' ? [root] : root.'**'.findAll { it.name() == 'testsuite' }
            suites.each { suite ->
                String key = "${suite.@name}@${suite.@timestamp}"
                if (!b.seenSuites.add(key)) { return }
                suite.testcase.each { tc ->
                    added.total++
                    if (tc.failure.size() || tc.error.size()) { added.failed++ } else if (tc.skipped.size()) { added.skipped++ }
                }
            }
            b.junit.files << rel
        }
        ['total', 'failed', 'skipped'].each { b.junit[it] += added[it] }
        b.println("Recording test results: ${added.total} tests, ${added.failed} failed, ${added.skipped} skipped")
        if (added.failed > 0 && !m.skipMarkingBuildUnstable) {
            b.worsen('UNSTABLE')
            b.stageWorsen('UNSTABLE')
        }
        [totalCount: added.total, failCount: added.failed, skipCount: added.skipped,
         passCount: added.total - added.failed - added.skipped]
    }
}
