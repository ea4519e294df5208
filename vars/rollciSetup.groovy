// rollciSetup: make the rollci binary available on this agent and stash it for later agents.
// Help: rollciSetup.txt.
//
// In order: the executable named by ROLLCI_BIN, else `rollci` on PATH, else the binary an
// earlier rollciSetup stashed, else a build from the rollci sources at `source`. The binary
// is copied to .rollci-bin/rollci in the workspace, env.ROLLCI_BIN points at it, and it is
// stashed as 'rollci-bin' (the other steps unstash it on an agent that lacks it).
def call(Map args = [:]) {
    Map config = [source: '.'] + args
    List unknown = config.keySet().toList() - ['source']
    if (unknown) {
        error("rollciSetup: unknown argument(s) ${unknown}; it takes [source]")
    }
    int found = sh(returnStatus: true, label: 'rollci: ROLLCI_BIN or PATH', script: '''
        if [ -n "${ROLLCI_BIN:-}" ] && [ -x "$ROLLCI_BIN" ]; then src=$ROLLCI_BIN
        elif command -v rollci >/dev/null 2>&1; then src=$(command -v rollci)
        else exit 10
        fi
        mkdir -p .rollci-bin
        [ "$src" -ef .rollci-bin/rollci ] || cp "$src" .rollci-bin/rollci
    ''')
    if (found == 10 && !unstashed()) {
        compileFromSources(config.source)
    } else if (found != 0 && found != 10) {
        error("rollciSetup: copying the rollci binary failed (exit ${found})")
    }
    env.ROLLCI_BIN = "${pwd()}/.rollci-bin/rollci"
    sh(label: 'rollci --version', script: '"$ROLLCI_BIN" --version')
    stash name: 'rollci-bin', includes: '.rollci-bin/rollci'
}

boolean unstashed() {
    try {
        unstash 'rollci-bin'
        return true
    } catch (IOException ignored) {   // AbortException: no such stash
        return false
    }
}

/** Builds from the sources (a checkout of the rollci repository: the library's own). */
void compileFromSources(String source) {
    if (!fileExists("${source}/Cargo.toml")) {
        error('rollciSetup: no rollci binary: ROLLCI_BIN is not an executable, `rollci` is not on PATH, ' +
            "no earlier rollciSetup stashed one, and '${source}' holds no rollci sources to build " +
            '(hint: install rollci on the agent, set ROLLCI_BIN, or pass `source:`)')
    }
    dir(source) {
        sh(label: 'cargo build rollci', script: 'cargo build --locked --release')
    }
    withEnv(["ROLLCI_SOURCE=${source}"]) {
        sh(label: 'rollci: the built binary',
            script: 'mkdir -p .rollci-bin && cp "$ROLLCI_SOURCE/target/release/rollci" .rollci-bin/rollci')
    }
}
