package rollci.harness

/**
 * Processes through /proc (Groovy 2.4 cannot call ProcessHandle's static methods): the
 * descendants of a pid, killing a tree (TERM, grace, KILL), and finding processes by their
 * environment (Jenkins' JENKINS_NODE_COOKIE) or command line.
 */
class Procs {
    /** pid -> [ppid, state] of every process. */
    static Map<Long, List> table() {
        Map<Long, List> t = [:]
        new File('/proc').eachFile { File d ->
            if (!(d.name ==~ /\d+/)) { return }
            try {
                String stat = new File(d, 'stat').text
                String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(' ')
                t[d.name as long] = [f[1] as long, f[0]]
            } catch (IOException ignored) { /* exited meanwhile */ }
        }
        t
    }

    static List<Long> descendants(long pid) {
        Map<Long, List> t = table()
        List<Long> found = []
        List<Long> todo = [pid]
        while (todo) {
            long p = todo.remove(0)
            t.each { child, info -> if (info[0] == p && !found.contains(child)) { found << child; todo << child } }
        }
        found
    }

    static boolean alive(long pid) {
        File stat = new File("/proc/${pid}/stat")
        try { return stat.exists() && !stat.text.substring(stat.text.lastIndexOf(')') + 2).startsWith('Z') }
        catch (IOException ignored) { return false }
    }

    static void signal(String sig, Collection<Long> pids) {
        if (pids) { new ProcessBuilder(['kill', "-${sig}".toString()] + pids*.toString()).redirectErrorStream(true).start().waitFor() }
    }

    /** Kills `pid` and every descendant: TERM, up to `graceMs` for them to go, then KILL. */
    static void killTree(long pid, long graceMs = 5000) {
        List<Long> all = [pid] + descendants(pid)
        signal('TERM', all)
        long end = System.currentTimeMillis() + graceMs
        while (all.any { alive(it) } && System.currentTimeMillis() < end) { sleep(100) }
        List<Long> rest = (all + descendants(pid)).unique().findAll { alive(it) }
        signal('KILL', rest)
    }

    /** Live processes whose environment contains `entry` (e.g. JENKINS_NODE_COOKIE=…). */
    static List<Map> withEnv(String entry) {
        find { File d -> new File(d, 'environ').bytes }.findAll { it.data.split('\u0000').contains(entry) }
    }

    /** Live processes whose command line contains `needle`. */
    static List<Map> withCmdline(String needle) {
        find { File d -> new File(d, 'cmdline').bytes }.findAll { it.cmdline.contains(needle) }
    }

    private static List<Map> find(Closure<byte[]> read) {
        long self = ProcessHandleless.self()
        List<Map> out = []
        table().each { pid, info ->
            if (pid == self || info[1] == 'Z') { return }
            try {
                File d = new File("/proc/${pid}")
                String cmdline = new String(new File(d, 'cmdline').bytes, 'UTF-8').replace('\u0000', ' ').trim()
                out << [pid: pid, cmdline: cmdline, data: new String(read(d), 'UTF-8')]
            } catch (IOException ignored) { /* gone or not ours */ }
        }
        out
    }
}

/** The JVM's own pid without ProcessHandle. */
class ProcessHandleless {
    static long self() { new File('/proc/self').canonicalFile.name as long }
}
