"""The analysis behind ``bench report``: aggregate tables, win rates and correlations (:mod:`.tables`), the
perturbation study (:mod:`.perturbations`, :mod:`.study`), the paired within-image study (:mod:`.paired`,
:mod:`.recolour`), the BAPPS agreement (:mod:`.bapps`) and the versioned claims (:mod:`.claims`, :mod:`.rules`,
:mod:`.evidence`, one module per rule set). It reads run folders and metric records; it trains nothing."""
