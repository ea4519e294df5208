package rollci.harness

import java.nio.file.Files
import java.nio.file.StandardCopyOption
import java.util.regex.Pattern

/** Ant-style file patterns (`**`, `*`, `?`, comma-separated) as stash, junit and archive use them. */
class Ant {
    /** Relative paths of the files under `base` matching `includes` and not `excludes`. */
    static List<String> match(File base, String includes, String excludes = null) {
        List<Pattern> inc = compile(includes ?: '**')
        List<Pattern> exc = compile(excludes)
        List<String> found = []
        if (!base.directory) { return found }
        String root = base.canonicalPath
        base.eachFileRecurse { File f ->
            if (!f.file || Files.isSymbolicLink(f.toPath())) { return }
            String rel = f.canonicalPath.substring(root.length() + 1)
            if (inc.any { it.matcher(rel).matches() } && !exc.any { it.matcher(rel).matches() }) { found << rel }
        }
        found.sort()
    }

    static List<Pattern> compile(String patterns) {
        patterns ? patterns.split(',')*.trim().findAll { it }.collect { toRegex(it) } : []
    }

    static Pattern toRegex(String pattern) {
        String p = pattern.replace('\\', '/')
        if (p.endsWith('/')) { p += '**' }
        StringBuilder r = new StringBuilder()
        int i = 0
        while (i < p.length()) {
            if (p.startsWith('**/', i)) { r << '(?:.*/)?'; i += 3 }
            else if (p.startsWith('/**', i) && i + 3 == p.length()) { r << '(?:/.*)?'; i += 3 }
            else if (p.startsWith('**', i)) { r << '.*'; i += 2 }
            else if (p[i] == '*') { r << '[^/]*'; i++ }
            else if (p[i] == '?') { r << '[^/]'; i++ }
            else { r << Pattern.quote(p[i]); i++ }
        }
        Pattern.compile(r.toString())
    }

    /** Copies `rel` paths from `from` to `to`, keeping modes (a stashed binary stays executable). */
    static void copy(File from, File to, List<String> rels) {
        rels.each { String rel ->
            File dst = new File(to, rel)
            dst.parentFile.mkdirs()
            Files.copy(new File(from, rel).toPath(), dst.toPath(),
                StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.COPY_ATTRIBUTES)
        }
    }
}
