"""Provider packages: the standard provider, and the SMTP provider's EmailOperator."""



from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
