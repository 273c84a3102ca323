"""Widgets of the run dashboard; each reacts to data handed to it by its screen and reads no state."""

from tui.widgets.agent_log import AgentLog
from tui.widgets.arms_panel import ArmsPanel
from tui.widgets.experiment_detail import ExperimentDetail
from tui.widgets.lanes_strip import LanesStrip
from tui.widgets.phase_bar import PhaseBar, PhaseView
from tui.widgets.results_table import ResultsTable
from tui.widgets.stats_header import StatsHeader

__all__ = [
    "AgentLog",
    "ArmsPanel",
    "ExperimentDetail",
    "LanesStrip",
    "PhaseBar",
    "PhaseView",
    "ResultsTable",
    "StatsHeader",
]
