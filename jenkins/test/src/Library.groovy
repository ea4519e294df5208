import java.lang.annotation.Retention
import java.lang.annotation.RetentionPolicy

/** Stands in for Jenkins' `@Library('rollci') _`: the harness loads `vars/` itself. */
@Retention(RetentionPolicy.SOURCE)
@interface Library {
    String[] value()
}
