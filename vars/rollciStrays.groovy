// rollciStrays: `rollci strays`: the servers rollci rented from a cloud that outlived their run,
// listed or (`delete: true`) deleted; no lab file needed, for a periodic job. Help: rollciStrays.txt.

/** The step's arguments that rollci reads from the environment: argument → variable. */
@groovy.transform.Field
final Map<String, String> VARIABLES = [
    cloud: 'OS_CLOUD', region: 'ROLLCI_REGION', interval: 'ROLLCI_INTERVAL', serviceName: 'ROLLCI_SERVICE_NAME',
    lab: 'ROLLCI_LAB',
]

def call(Map args = [:]) {
    if (!(args.delete in [null, true, false])) {
        error("rollciStrays: `delete` must be true or false, got '${args.delete}'")
    }
    List<String> vars = ["ROLLCI_DELETE=${args.delete ? 'true' : 'false'}"]
    for (String name in VARIABLES.keySet()) {
        if (args[name] != null) {
            vars << "${VARIABLES[name]}=${args[name]}"
        }
    }
    rollciStep(step: 'rollciStrays', command: 'strays', args: args, extra: ['delete'] + VARIABLES.keySet(),
        credentials: ['cloud', 'clouds'], env: vars, script: 'exec "${ROLLCI_BIN:-rollci}" strays')
}
