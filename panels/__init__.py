"""Panels beside FiftyOne's sample grid: thin adapters that read the workbench, call the library
and set their state and data (see :mod:`panels.base` and :mod:`panels.workbench`)."""

from .detail import ConceptPanel
from .embedding import EmbeddingPanel
from .knowledge import KnowledgePanel
from .performance import PerformancePanel
from .provenance import ProvenancePanel
from .why import WhyPanel

PANELS = (PerformancePanel, KnowledgePanel, ProvenancePanel, EmbeddingPanel, ConceptPanel, WhyPanel)


def register_panels(plugin):
    for panel in PANELS:
        plugin.register(panel)
