import static org.junit.Assert.assertEquals
import static org.junit.Assert.assertFalse
import static org.junit.Assert.assertTrue

import java.util.concurrent.TimeUnit
import org.junit.Test

/** The steps' help pages: generated from jenkins/help/, and saying what the steps do. */
class HelpTest extends PipelineTestBase {
    static final File HELP = new File(ROOT, 'jenkins/help')

    @Test
    void theHelpPagesAreWhatScriptsVarsHelpWrites() {
        Process p = new ProcessBuilder(new File(ROOT, 'scripts/vars-help').path, '--check')
            .directory(ROOT).redirectErrorStream(true).start()
        p.outputStream.close()
        String out = p.inputStream.getText('UTF-8')
        assertTrue('scripts/vars-help --check hung', p.waitFor(60, TimeUnit.SECONDS))
        assertEquals("vars/*.txt are stale:\n${out}", 0, p.exitValue())
    }

    @Test
    void eachCredentialKindHasAHelpItemNamingItsArgumentAndVariables() {
        Map<String, Map> kinds = rollciStepField('CREDENTIALS')
        File items = new File(HELP, 'credentials')
        kinds.each { String kind, Map spec ->
            File item = new File(items, "${kind}.html")
            assertTrue("${kind}: no ${item}", item.file)
            ([spec.argument] + spec.variables.values()).each { String name ->
                assertTrue("${item.name} does not name `${name}`", item.text.contains("<code>${name}</code>"))
            }
        }
        Set<String> described = items.list().collect { it - '.html' } as Set
        assertEquals('help items of no credential kind', [] as Set, described - kinds.keySet())
    }

    @Test
    void eachStepsPageListsExactlyTheCredentialsItTakes() {
        List<String> all = rollciStepField('CREDENTIALS').values()*.argument
        File vars = new File(ROOT, 'vars')
        StepsTest.STEP_CREDENTIALS.each { String step, List<String> takes ->
            String page = new File(vars, "${step}.txt").text
            takes.each { String argument ->
                assertTrue("${step}.txt does not list `${argument}`", page.contains("<li><code>${argument}</code>"))
            }
            (all - takes).each { String other ->
                assertFalse("${step}.txt names `${other}`, which ${step} refuses", page.contains(other))
            }
        }
    }

    @Test
    void everyStepTakingCredentialsIsInStepsTest() {
        Set<String> declaring = new File(ROOT, 'vars').listFiles()
            .findAll { it.name.endsWith('.groovy') && it.text =~ /\bcredentials:\s*\[/ && it.name != 'rollciStep.groovy' }
            .collect { it.name - '.groovy' } as Set
        assertEquals(declaring, StepsTest.STEP_CREDENTIALS.keySet())
    }

    /** A field of vars/rollciStep.groovy, read from the script itself (fields are set on parse). */
    static Object rollciStepField(String name) {
        new GroovyShell().parse(new File(ROOT, 'vars/rollciStep.groovy')).getProperty(name)
    }
}
