package rollci.harness

import org.codehaus.groovy.control.CompilerConfiguration

/**
 * One pipeline build: what the test configures (workspace, agent environment, parameters,
 * credentials, the library), what the run records (every step call, the masked log, stage
 * and build results, JUnit totals, archived files, leftover processes) and the execution
 * context of the steps (current directory, environment layers, secrets, timeouts).
 * A build runs on one thread; builds are independent, so tests run in parallel.
 */
class Build {
    static final List<String> RESULTS = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'NOT_BUILT', 'ABORTED']
    /** Steps the harness provides; anything else fails like Jenkins' "No such DSL method". */
    static final List<String> STEPS = ['archiveArtifacts', 'catchError', 'deleteDir', 'dir', 'echo', 'error',
        'fileExists', 'isUnix', 'junit', 'libraryResource', 'lock', 'node', 'pipeline', 'pwd', 'readFile', 'retry',
        'script', 'sh', 'sleep', 'stash', 'timeout', 'unstable', 'unstash', 'withCredentials', 'withEnv', 'writeFile']
    /** Symbols: arguments of steps (credential bindings), not steps themselves. */
    static final List<String> SYMBOLS = ['file', 'string', 'usernamePassword']

    // --- configured by the test
    File root
    File workspace
    File libraryRoot
    Map<String, String> agentEnv = [:]
    /** Extra (or, with a null value, removed) agent variables per agent label of `node(label)`. */
    Map<String, Map<String, String>> labelEnv = [:]
    Map<String, Object> params = [:]
    /** Credentials by id: [username:, password:], [secret:] (secret text) or [fileName:, content:] (secret file). */
    Map<String, Map> credentials = [:]
    String jobName = 'rollci'
    String previousResult
    /** `node(label)` agents are discarded afterwards, workspace and all, like cloud agents. */
    boolean ephemeralAgents = false
    /** How long an aborted `sh` may run on after SIGTERM before its tree is killed (Jenkins' forced termination). */
    long abortGraceMs = 60000
    /** Echo the log to stdout as it is written. */
    boolean echo = System.getenv('HARNESS_ECHO') == '1'

    // --- recorded
    final List<Map> calls = Collections.synchronizedList([])
    final StringBuffer log = new StringBuffer()
    String result = 'SUCCESS'
    final Map<String, String> stageResults = [:]
    final Map junit = [total: 0, failed: 0, skipped: 0, files: []]
    final List<String> archived = []
    /** The declarative `triggers {}` of the pipeline: [kind: 'cron', spec: …], … */
    final List<Map> triggers = []
    final List<Map> leftovers = []
    final List<Throwable> errors = []
    final String cookie = UUID.randomUUID().toString()

    // --- execution context
    Binding binding
    File cwd
    String agentName = 'built-in'
    File agentWorkspace
    Map<String, String> agentVars = [:]
    final Map<String, String> globalEnv = [:]
    final List<Map<String, String>> envLayers = []
    final List<String> secrets = Collections.synchronizedList([])
    final List<Map> timeouts = []
    final Set<String> seenSuites = [] as Set
    String stage
    private Closure<Boolean> abortTrigger
    private int agents = 0
    private int durable = 0

    Build(File root) {
        this.root = root
        this.workspace = new File(root, 'workspace')
        workspace.mkdirs()
    }

    // ------------------------------------------------------------------ running

    /** Runs a Jenkinsfile's text; returns this build for assertions. */
    Build run(String jenkinsfile) {
        agentWorkspace = workspace
        cwd = workspace
        agentVars = new LinkedHashMap(agentEnv)
        binding = new Binding()
        CompilerConfiguration cc = new CompilerConfiguration()
        cc.scriptBaseClass = PipelineScript.name
        GroovyShell shell = new GroovyShell(Build.classLoader, binding, cc)
        bind(shell)
        try {
            shell.parse(jenkinsfile, 'WorkflowScript').run()
        } catch (Throwable e) {
            fail(e)
        } finally {
            reapLeftovers()
            println("Finished: ${result}")
        }
        this
    }

    private void bind(GroovyShell shell) {
        binding.setVariable('env', new EnvProxy(build: this))
        binding.setVariable('params', params)
        binding.setVariable('currentBuild', new CurrentBuild(build: this))
        binding.setVariable('scm', [kind: 'fake-scm'])
        Steps steps = new Steps(b: this)
        STEPS.each { String name ->
            binding.setVariable(name, { Object[] args -> step(name, args, true) { steps.invokeMethod(name, args) } })
        }
        SYMBOLS.each { String name -> binding.setVariable(name, { Object[] args -> steps.invokeMethod(name, args) }) }
        File vars = new File(libraryRoot, 'vars')
        (vars.listFiles() ?: []).findAll { it.name.endsWith('.groovy') }.sort { it.name }.each { File f ->
            String name = f.name - '.groovy'
            Script script = shell.parse(f)   // parse, not run: the step is the script's `call`
            binding.setVariable(name, globalVariable(script) { Object[] args ->
                step(name, args, false) { script.invokeMethod('call', args) }
            })
        }
    }

    /**
     * A `vars/` script as Jenkins exposes it: calling it runs its `call`, and `name.method(…)`
     * reaches the script's other methods (so a test can call a helper like `rollciStep.judge` alone).
     */
    private static Closure globalVariable(Script script, Closure call) {
        Closure c = { Object[] args -> call.call(args) }
        c.delegate = script
        c.resolveStrategy = Closure.DELEGATE_ONLY
        c
    }

    private Object step(String name, Object[] args, boolean logged, Closure body) {
        calls << [step: name, args: args as List, text: mask(describe(args)), stage: stage, agent: agentName]
        if (logged) { println("[Pipeline] ${name}") }
        body.call()
    }

    private static String describe(Object[] args) {
        (args as List).findAll { !(it instanceof Closure) }.collect { it instanceof Map ? it.toString() : String.valueOf(it) }.join(', ')
    }

    /** The declarative pipeline, Jenkins' way: environment, stages (skipped after a failure), post. */
    void runDeclarative(Closure body) {
        PipelineSpec p = new PipelineSpec()
        Spec.eval(body, p)
        triggers.addAll(p.triggers)
        p.parameters.each { if (!params.containsKey(it.name)) { params[it.name] = it.defaultValue } }
        if (p.agent?.label) { agentName = p.agent.label }
        println('[Pipeline] Start of Pipeline')
        if (p.environment) { Spec.eval(p.environment, new EnvSpec(build: this, target: globalEnv)) }
        Throwable first = null
        try {
            withTimeout(p.options.timeout as Map) {
                p.stages.each { StageSpec s ->
                    if (first != null) {
                        println("Stage \"${s.name}\" skipped due to earlier failure(s)")
                        stageResults[s.name] = 'SKIPPED'
                    } else if (p.options.skipStagesAfterUnstable && result == 'UNSTABLE') {
                        println("Stage \"${s.name}\" skipped due to earlier stage(s) marking the build as \"unstable\"")
                        stageResults[s.name] = 'SKIPPED'
                    } else {
                        first = runStage(s)
                    }
                }
            }
        } catch (FlowInterruptedException e) {
            fail(e)
        }
        stage = 'Declarative: Post Actions'
        runPost(p.post) { result }
        stage = null
        println('[Pipeline] End of Pipeline')
        if (first != null) { println("ERROR: ${first.message}") }
    }

    private Throwable runStage(StageSpec s) {
        stage = s.name
        stageResults[s.name] = 'SUCCESS'
        println("[Pipeline] { (${s.name})")
        Throwable err = null
        Map<String, String> layer = [:]
        envLayers << layer
        try {
            if (s.environment) { Spec.eval(s.environment, new EnvSpec(build: this, target: layer)) }
            withTimeout(s.options.timeout as Map) { Spec.steps(s.steps) }
        } catch (Throwable e) {
            err = e
            fail(e)
        } finally {
            envLayers.remove(layer)
        }
        String name = s.name
        runPost(s.post) { stageResults[name] }
        println('[Pipeline] }')
        stage = null
        err
    }

    private void runPost(Map<String, Closure> post, Closure<String> current) {
        PostSpec.ORDER.each { String cond ->
            if (post[cond] && applies(cond, current.call())) {
                println("[Pipeline] ${cond}")
                try {
                    Spec.steps(post[cond])
                } catch (Throwable e) {
                    println("Error when executing ${cond} post condition:")
                    fail(e)
                }
            }
        }
    }

    private boolean applies(String cond, String now) {
        switch (cond) {
            case 'always': case 'cleanup': return true
            case 'changed': return previousResult != null && previousResult != now
            case 'fixed': return now == 'SUCCESS' && previousResult in ['UNSTABLE', 'FAILURE']
            case 'regression': return previousResult == 'SUCCESS' && now != 'SUCCESS'
            case 'aborted': return now == 'ABORTED'
            case 'failure': return now == 'FAILURE'
            case 'success': return now == 'SUCCESS'
            case 'unstable': return now == 'UNSTABLE'
            case 'unsuccessful': return now != 'SUCCESS'
        }
        false
    }

    /** A step threw: the stage and the build fail (ABORTED for an interruption). */
    void fail(Throwable e) {
        errors << e
        String r = e instanceof FlowInterruptedException ? 'ABORTED' : 'FAILURE'
        worsen(r)
        if (stage) { stageResults[stage] = worse(stageResults[stage] ?: 'SUCCESS', r) }
        println(e instanceof AbortException || e instanceof FlowInterruptedException ? "ERROR: ${e.message}" : e.toString())
    }

    void worsen(String r) { result = worse(result, r) }

    void stageWorsen(String r) { if (stage) { stageResults[stage] = worse(stageResults[stage] ?: 'SUCCESS', r) } }

    static String worse(String a, String b) { RESULTS.indexOf(b) > RESULTS.indexOf(a) ? b : a }

    // ------------------------------------------------------------------ abort

    /**
     * Presses Abort the first time the running `sh`'s output so far satisfies `trigger`: that
     * `sh` gets SIGTERM and fails with FlowInterruptedException (the build ABORTED, later stages
     * skipped); the trigger is then spent, so `finally` blocks and `post` run undisturbed.
     */
    Build abortWhen(Closure<Boolean> trigger) {
        abortTrigger = trigger
        this
    }

    /** True, once, when the armed trigger accepts `output`. */
    boolean abortDue(CharSequence output) {
        if (abortTrigger == null || !abortTrigger.call(output.toString())) { return false }
        abortTrigger = null
        true
    }

    // ------------------------------------------------------------------ timeouts

    /** Runs `body` with a deadline; expiry kills running `sh` trees and throws FlowInterruptedException. */
    Object withTimeout(Map spec, Closure body) {
        if (!spec) { return body.call() }
        long ms = toMillis(spec.time as long, (spec.unit ?: 'MINUTES') as String)
        Map scope = [deadline: System.currentTimeMillis() + ms, fired: false]
        timeouts << scope
        try {
            Object r = body.call()
            if (scope.fired) { throw new FlowInterruptedException('Timeout has been exceeded') }
            return r
        } catch (FlowInterruptedException e) {
            if (scope.fired) {
                println('Timeout has been exceeded')
                throw new FlowInterruptedException('Timeout has been exceeded')
            }
            throw e
        } finally {
            timeouts.remove(scope)
        }
    }

    static long toMillis(long time, String unit) {
        java.util.concurrent.TimeUnit.valueOf(unit).toMillis(time)
    }

    /** True when some enclosing timeout has expired (and marks it fired). */
    boolean expired() {
        long now = System.currentTimeMillis()
        boolean any = false
        timeouts.each { if (now >= it.deadline) { it.fired = true; any = true } }
        any
    }

    // ------------------------------------------------------------------ environment

    /** The environment a process gets: agent, build variables, `environment {}`/`env.X`, withEnv layers. */
    Map<String, String> env() {
        Map<String, String> e = new TreeMap<String, String>(agentVars)
        e.putAll([WORKSPACE: agentWorkspace.path, BUILD_NUMBER: '1', BUILD_ID: '1', JOB_NAME: jobName,
            BUILD_TAG: "jenkins-${jobName}-1".toString(), NODE_NAME: agentName, JENKINS_NODE_COOKIE: cookie])
        globalEnv.each { k, v -> override(e, k, v) }
        envLayers.each { layer -> layer.each { k, v -> override(e, k, v) } }
        e
    }

    /** Jenkins' EnvVars.override: `PATH+X` prepends to PATH, an empty value removes the variable. */
    static void override(Map<String, String> e, String key, String value) {
        int plus = key.indexOf('+')
        if (plus > 0) {
            String name = key.substring(0, plus)
            e[name] = value + (e[name] ? ':' + e[name] : '')
        } else if (value == null || value.empty) {
            e.remove(key)
        } else {
            e[key] = value
        }
    }

    Map credential(String id) {
        Map c = credentials[id]
        if (c == null) { throw new AbortException("Could not find credentials entry with ID '${id}'") }
        c
    }

    /** Switches to a fresh agent (`node(label)`): its own workspace and environment. */
    Map enterAgent(String label) {
        Map saved = [name: agentName, ws: agentWorkspace, cwd: cwd, vars: agentVars]
        agents++
        agentName = label ?: "agent-${agents}"
        agentWorkspace = new File(root, "agents/${agentName}-${agents}/workspace")
        agentWorkspace.mkdirs()
        cwd = agentWorkspace
        agentVars = new LinkedHashMap(agentEnv)
        (labelEnv[label] ?: [:]).each { k, v -> if (v == null) { agentVars.remove(k) } else { agentVars[k] = v } }
        saved
    }

    void leaveAgent(Map saved) {
        if (ephemeralAgents) {
            agentWorkspace.deleteDir()
            new File(agentWorkspace.path + '@tmp').deleteDir()
        }
        agentName = saved.name
        agentWorkspace = saved.ws
        cwd = saved.cwd
        agentVars = saved.vars
    }

    File controlDir() {
        File d = new File(agentWorkspace.path + '@tmp', "durable-${++durable}")
        d.mkdirs()
        d
    }

    // ------------------------------------------------------------------ log

    String mask(String text) {
        String out = text
        List<String> all
        synchronized (secrets) { all = secrets.findAll { it }.sort { -it.length() } }
        all.each { out = out.replace(it, '****') }
        out
    }

    void println(Object text) {
        String line = mask(String.valueOf(text))
        log.append(line).append('\n')
        if (echo) { System.out.println("[${jobName}] ${line}") }
    }

    /** The log and every recorded call: what a reader of the build could ever see. */
    String transcript() { log.toString() + '\n' + calls*.text.join('\n') }

    List<Map> callsOf(String step) { calls.findAll { it.step == step } }

    /** Jenkins' ProcessTreeKiller: processes still carrying this build's cookie are recorded and killed. */
    void reapLeftovers() {
        List<Map> left = Procs.withEnv("JENKINS_NODE_COOKIE=${cookie}")
        left.each {
            leftovers << [pid: it.pid, cmdline: it.cmdline]
            println("Killing leftover process ${it.pid}: ${it.cmdline}")
            Procs.killTree(it.pid as long, 2000)
        }
    }
}

/** `env`: reads the current environment, `env.X = v` sets a build-wide variable. */
class EnvProxy extends GroovyObjectSupport {
    Build build

    @Override
    Object getProperty(String name) { build.env()[name] }

    @Override
    void setProperty(String name, Object value) { Build.override(build.globalEnv, name, value?.toString()) }

    Object getAt(String name) { build.env()[name] }

    Map getEnvironment() { build.env() }
}

/** `currentBuild` (RunWrapper): `result` is null until something worsened it. */
class CurrentBuild {
    Build build
    String getResult() { build.result == 'SUCCESS' ? null : build.result }
    void setResult(String r) { build.worsen(r) }
    String getCurrentResult() { build.result }
    int getNumber() { 1 }
    String getDisplayName() { '#1' }
}
