package rollci.harness

/**
 * Base class of the Jenkinsfile and of every `vars/` script: a call that is neither a method
 * nor a step of the binding fails like Jenkins' "No such DSL method".
 */
abstract class PipelineScript extends Script {
    @Override
    Object invokeMethod(String name, Object args) {
        try {
            return super.invokeMethod(name, args)
        } catch (MissingMethodException e) {
            if (e.method == name && !binding.variables.containsKey(name)) {
                List<String> steps = binding.variables.findAll { k, v -> v instanceof Closure }*.key.sort()
                throw new NoSuchMethodError("No such DSL method '${name}' found among steps ${steps}")
            }
            throw e
        }
    }
}
