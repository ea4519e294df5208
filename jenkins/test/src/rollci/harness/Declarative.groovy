package rollci.harness

/**
 * The declarative model: `pipeline { … }` evaluated into these specs (sections checked like
 * Jenkins' validator does, by name), then run by Build.runDeclarative.
 */
class Spec {
    /** Runs a section's closure against `delegate`; calls not handled there go to the script. */
    static void eval(Closure c, Object delegate) {
        Closure cl = c.rehydrate(delegate, c.thisObject, c.thisObject)
        cl.resolveStrategy = Closure.DELEGATE_FIRST
        cl.call()
    }

    /** A body of steps: no section delegate, every call resolves to the script's steps. */
    static Object steps(Closure c) {
        Closure cl = c.rehydrate(null, c.thisObject, c.thisObject)
        cl.resolveStrategy = Closure.OWNER_FIRST
        cl.call()
    }
}

class PipelineSpec {
    Map agent
    Map options = [:]
    List<Map> parameters = []
    Closure environment
    List<StageSpec> stages = []
    Map<String, Closure> post = [:]
    List<Map> triggers = []

    String getAny() { 'any' }
    String getNone() { 'none' }
    void agent(String kind) { agent = [kind: kind] }
    void agent(Closure c) { AgentSpec s = new AgentSpec(); Spec.eval(c, s); agent = s.spec }
    void options(Closure c) { Spec.eval(c, new OptionsSpec(options: options)) }
    void parameters(Closure c) { Spec.eval(c, new ParametersSpec(list: parameters)) }
    void environment(Closure c) { environment = c }
    void stages(Closure c) { Spec.eval(c, new StagesSpec(list: stages)) }
    void post(Closure c) { Spec.eval(c, new PostSpec(map: post)) }
    /** Recorded (Build.triggers), not run: a build is one firing. */
    void triggers(Closure c) { Spec.eval(c, new TriggersSpec(list: triggers)) }
    def methodMissing(String name, args) { throw new IllegalArgumentException("Undefined section \"${name}\"") }
}

class AgentSpec {
    Map spec = [:]
    void label(String l) { spec = [kind: 'label', label: l] }
    void node(Closure c) { Spec.eval(c, this) }
    def methodMissing(String name, args) { throw new IllegalArgumentException("Invalid agent type \"${name}\"") }
}

class OptionsSpec {
    Map options
    void timeout(Map a) { options.timeout = a }
    void buildDiscarder(Object s) { options.buildDiscarder = s }
    Map logRotator(Map a) { [logRotator: a] }
    void disableConcurrentBuilds(Map a = [:]) { options.disableConcurrentBuilds = true }
    void skipStagesAfterUnstable() { options.skipStagesAfterUnstable = true }
    void timestamps() { options.timestamps = true }
    void skipDefaultCheckout(boolean b = true) { options.skipDefaultCheckout = b }
    void retry(int n) { options.retry = n }
    def methodMissing(String name, args) { throw new IllegalArgumentException("Invalid option type \"${name}\"") }
}

class ParametersSpec {
    List<Map> list
    void string(Map a) { list << [type: 'string', name: a.name, defaultValue: a.defaultValue ?: ''] }
    void text(Map a) { string(a) }
    void booleanParam(Map a) { list << [type: 'boolean', name: a.name, defaultValue: a.defaultValue ?: false] }
    void choice(Map a) { list << [type: 'choice', name: a.name, defaultValue: (a.choices as List)[0]] }
    def methodMissing(String name, args) { throw new IllegalArgumentException("Invalid parameter type \"${name}\"") }
}

/** `triggers { cron('H/30 * * * *') }`: the job's triggers, as declarative knows them. */
class TriggersSpec {
    List<Map> list
    void cron(String spec) { list << [kind: 'cron', spec: spec] }
    void pollSCM(String spec) { list << [kind: 'pollSCM', spec: spec] }
    void upstream(Map a) { list << [kind: 'upstream'] + a }
    def methodMissing(String name, args) { throw new IllegalArgumentException("Invalid trigger type \"${name}\"") }
}

class StagesSpec {
    List<StageSpec> list
    void stage(String name, Closure c) { StageSpec s = new StageSpec(name: name); Spec.eval(c, s); list << s }
    def methodMissing(String name, args) { throw new IllegalArgumentException("Expected a stage, got \"${name}\"") }
}

class StageSpec {
    String name
    Closure steps
    Closure environment
    Map options = [:]
    Map<String, Closure> post = [:]
    void steps(Closure c) { steps = c }
    void environment(Closure c) { environment = c }
    void options(Closure c) { Spec.eval(c, new OptionsSpec(options: options)) }
    void post(Closure c) { Spec.eval(c, new PostSpec(map: post)) }
    def methodMissing(String name, args) { throw new IllegalArgumentException("Unknown stage section \"${name}\"") }
}

class PostSpec {
    /** Jenkins' order of post conditions. */
    static final List<String> ORDER = ['always', 'changed', 'fixed', 'regression', 'aborted', 'failure',
        'success', 'unstable', 'unsuccessful', 'cleanup']
    Map<String, Closure> map
    def methodMissing(String name, args) {
        if (!ORDER.contains(name)) { throw new IllegalArgumentException("Invalid condition \"${name}\"") }
        map[name] = (args as List)[0] as Closure
    }
}

/** `environment { A = 'x'; B = "${params.P}" }`: assignments in order, read back by later ones. */
class EnvSpec {
    Build build
    Map<String, String> target

    @Override
    void setProperty(String name, Object value) {
        Build.override(target, name, value == null ? '' : value.toString())
    }

    @Override
    Object getProperty(String name) {
        target.containsKey(name) ? target[name] : build.binding.getVariable(name)
    }

    /** `credentials('id')`: the secret (user:password for a username/password), masked from now on. */
    String credentials(String id) {
        Map c = build.credential(id)
        String value = c.secret ?: "${c.username}:${c.password}"
        build.secrets.addAll([value, c.password, c.secret].findAll { it })
        value
    }
}
