// The shared body of every rollci step (private: call rollciProvision, rollciVerify, … instead).
// It restores the state journal stashed by the previous step, binds the credentials the step
// declares (only those: no step sees a secret it has no use for), runs the step's
// single-quoted `sh` (parameters reach the shell only as environment variables), maps rollci's
// exit code to the build result, and always publishes JUnit, archives the reports and logs and
// stashes the journal for the next stage, which may run on another agent.

/** Arguments every rollci step takes. */
@groovy.transform.Field
final List<String> COMMON = ['checkFailure', 'config', 'workspace']

/**
 * The kinds of credentials a step may declare (`credentials: ['cloud']`): the argument that
 * names the Jenkins credentials id, the withCredentials binding and the variables it sets
 * (the names rollci reads). `clouds` is a secret file (a clouds.yaml): Jenkins writes it to a
 * temporary file outside the workspace and sets the variable to its path, so the secret is
 * never in the workspace or a shell string. The help pages' jenkins/help/credentials/<kind>.html
 * follow it.
 */
@groovy.transform.Field
final Map<String, Map> CREDENTIALS = [
    cloud: [argument: 'cloudCredentialsId', binding: 'usernamePassword',
        variables: [usernameVariable: 'OS_USERNAME', passwordVariable: 'OS_PASSWORD']],
    clouds: [argument: 'cloudsYamlCredentialsId', binding: 'file',
        variables: [variable: 'OS_CLIENT_CONFIG_FILE']],
    es: [argument: 'esCredentialsId', binding: 'usernamePassword',
        variables: [usernameVariable: 'ROLLCI_ES_USER', passwordVariable: 'ROLLCI_ES_PASSWORD']],
]

/** Where rollciSetup puts the binary in an agent's workspace. */
@groovy.transform.Field
final String BIN = '.rollci-bin/rollci'

/**
 * spec: step (the calling step's name, for messages), command (rollci's subcommand),
 * script (the single-quoted shell line), args (the caller's arguments), credentials (the
 * kinds of CREDENTIALS the step takes, [] for none), extra (argument names the caller takes
 * besides COMMON and its credentials), env (NAME=value list for withEnv).
 */
def call(Map spec) {
    Map args = [checkFailure: 'UNSTABLE'] + (spec.args ?: [:])
    List<String> kinds = declared(spec.step, spec.credentials)
    check(spec.step, args, kinds, spec.extra ?: [])
    String ws = args.workspace ?: env.ROLLCI_WORKSPACE ?: '.rollci'
    List<String> vars = ["ROLLCI_WORKSPACE=${ws}"] + (args.config ? ["ROLLCI_CONFIG=${args.config}"] : [])
    restoreState()
    restoreBinary()
    int code = -1
    try {
        withEnv(vars + (spec.env ?: [])) {
            withCredentials(bindings(args, kinds)) {
                code = sh(returnStatus: true, label: "rollci ${spec.command}", script: spec.script)
            }
        }
    } finally {
        publish(ws)
    }
    judge("rollci ${spec.command}", code, args.checkFailure)
}

/** The credential kinds a step declared, checked against CREDENTIALS (a mistake of the library's). */
List<String> declared(String step, List<String> kinds) {
    if (kinds == null) {
        error("${step}: its rollciStep spec declares no `credentials:` (the kinds it takes, [] for none)")
    }
    List unknown = kinds - CREDENTIALS.keySet()
    if (unknown) {
        error("${step}: unknown credential kind(s) ${unknown} in its rollciStep spec; known: ${CREDENTIALS.keySet()}")
    }
    return kinds
}

/** The argument names of the given credential kinds. */
List<String> credentialArguments(List<String> kinds) {
    List<String> names = []
    for (String kind in kinds) {
        names << CREDENTIALS[kind].argument
    }
    return names
}

/** Errors on an unknown argument, a credential the step does not take, or a bad value, before anything runs. */
void check(String step, Map args, List<String> kinds, List<String> extra) {
    List<String> taken = credentialArguments(kinds)
    List refused = args.keySet().toList().intersect(credentialArguments(CREDENTIALS.keySet().toList()) - taken)
    if (refused) {
        error("${step}: does not take ${refused} (its credentials: ${taken ?: 'none'})")
    }
    List allowed = COMMON + taken + extra
    List unknown = args.keySet().toList() - allowed
    if (unknown) {
        error("${step}: unknown argument(s) ${unknown}; it takes ${allowed}")
    }
    if (!(args.checkFailure in ['UNSTABLE', 'FAILURE'])) {
        error("${step}: `checkFailure` must be 'UNSTABLE' or 'FAILURE', got '${args.checkFailure}'")
    }
    String ws = args.workspace
    if (ws != null && (ws.startsWith('/') || ws.split('/').contains('..'))) {
        error("${step}: `workspace` must be a path inside the job's workspace (it is stashed and archived), " +
            "got '${ws}'")
    }
}

/** The journal of the previous step, possibly from another agent; absent before the first. */
void restoreState() {
    try {
        unstash 'rollci-state'
    } catch (IOException ignored) {   // AbortException: no such stash
        echo 'rollci: no saved state yet (the first rollci step of this build)'
    }
}

/** On another agent than rollciSetup's, the binary it stashed. */
void restoreBinary() {
    if (env.ROLLCI_BIN && !fileExists(env.ROLLCI_BIN)) {
        unstash 'rollci-bin'
        env.ROLLCI_BIN = "${pwd()}/${BIN}"
    }
}

/** The withCredentials bindings of the declared kinds the caller gave an id for. */
List bindings(Map args, List<String> kinds) {
    List result = []
    for (String kind in kinds) {
        Map spec = CREDENTIALS[kind]
        if (args[spec.argument]) {
            result << "${spec.binding}"([credentialsId: args[spec.argument]] + spec.variables)
        }
    }
    return result
}

/** JUnit, reports and logs, and the journal for the next stage: also after a failure. */
void publish(String ws) {
    // rollci's exit code decides the result (a lab may allow some failing smoke tests):
    // the failures are published, but they do not mark the build by themselves.
    junit allowEmptyResults: true, skipMarkingBuildUnstable: true, testResults: "${ws}/reports/junit/*.xml"
    archiveArtifacts allowEmptyArchive: true, artifacts: "${ws}/reports/**, ${ws}/logs/**, ${ws}/evidence/**"
    // Never the lab itself (`lab/`): the local provider's lab lives on this agent only.
    stash name: 'rollci-state', includes: "${ws}/state.json, ${ws}/evidence/**, ${ws}/reports/**", allowEmpty: true
}

/**
 * rollci's exit code as the build result, row by row the README's "Exit codes" table (StepsTest
 * holds the two together): 1 (a check failed) marks the build UNSTABLE and continues, or fails
 * it, as `checkFailure` says; 2, 3, 4 and 5 (aborted) fail the build (the post section's
 * rollciCleanup still runs).
 */
void judge(String what, int code, String checkFailure) {
    switch (code) {
        case 0:
            return
        case 1:
            String message = "${what}: the system under test failed a check (exit 1); see the test results and reports"
            if (checkFailure == 'FAILURE') {
                error(message)
            }
            unstable(message)
            return
        case 2:
            error("${what}: usage or configuration error, exit 2 (nothing was changed)")
            return
        case 3:
            error("${what}: infrastructure error, exit 3 (see the archived logs; cleanup runs in post)")
            return
        case 4:
            error("${what}: the workspace is locked by another rollci (exit 4)")
            return
        case 5:
            error("${what}: aborted by SIGTERM or SIGINT, exit 5 (the step is journaled aborted; cleanup runs in post)")
            return
        default:
            error("${what}: unexpected exit code ${code}")
    }
}
