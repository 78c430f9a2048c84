"""What a phase module is built from: the Step/Phase/Check contract (model), gate values and their
evaluation (gates), the bake-and-gate loop (bake) and checks shared by several phases (checks).
Below the phases, above the providers: phases import it, it never imports a phase or the engine."""
